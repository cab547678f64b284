// Compiled into every executable of the -DRUNBOOK_SANITIZE=ON (and -DRUNBOOK_FUZZ=ON) build, so
// that the runbook binary the tests spawn as a child reports like the tests themselves, whatever
// environment it inherits. ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS given in the environment
// are applied over these.
//
// A report exits with its own status (86 ASan/LSan, 87 UBSan), never 1 or 2: a test that expects
// "the runbook failed" must not pass because the sanitizer stopped the process.
extern "C" {
const char* __asan_default_options() {
  return "exitcode=86:abort_on_error=0:detect_leaks=1:strict_string_checks=1:"
         "check_initialization_order=1:handle_abort=1";
}
const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1:exitcode=87"; }
const char* __lsan_default_options() { return "suppressions=" RUNBOOK_LSAN_SUPPRESSIONS; }
}
