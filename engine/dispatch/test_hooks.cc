// Linked only into the executables of a build configured with the tests (the test programs and
// build/runbook, which they run): turns on the dispatcher's test hooks there (RUNBOOK_CRASH_AT,
// RUNBOOK_CHECK_RESULTS). The installed runbook (build/dist/runbook) does not link it.
namespace rb {
extern bool g_test_hooks_linked;
namespace {
struct EnableTestHooks {
  EnableTestHooks() { g_test_hooks_linked = true; }
} enable_test_hooks;
}  // namespace
}  // namespace rb
