// Ctrl-C handling. The signal handler only counts (style: a handler never touches interpreter
// state); the Lua hook and every waiting effect poll interrupt_requested() at their next safe
// point.
//
// Levels: the first Ctrl-C (or SIGTERM) stops the running step; the runner then acknowledges it
// (acknowledge_interrupt) and runs the remaining `always = true` steps, which are not stopped by
// that first one. A second Ctrl-C is more than was acknowledged: it stops the running cleanup step
// and the rest are skipped. The third exits at once (the handler, 130).
#pragma once
#include <atomic>

namespace rb {

inline std::atomic<int>& interrupt_count() {
  static std::atomic<int> n{0};
  return n;
}
// How many of the counted interrupts the runner has taken into account (see above).
inline std::atomic<int>& interrupt_acknowledged() {
  static std::atomic<int> n{0};
  return n;
}
// An interrupt that should stop what runs now: more than the runner acknowledged.
inline bool interrupt_requested() {
  return interrupt_count().load() > interrupt_acknowledged().load();
}
// The runner has stopped the step for the interrupts counted so far; what it runs next (cleanup)
// is stopped only by a further one.
inline void acknowledge_interrupt() { interrupt_acknowledged().store(interrupt_count().load()); }

}  // namespace rb
