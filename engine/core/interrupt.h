// Ctrl-C handling. The signal handler only sets this flag (style: a handler never touches
// interpreter state); the Lua hook and every waiting effect poll it at their next safe point.
#pragma once
#include <atomic>

namespace rb {

inline std::atomic<int>& interrupt_count() {
  static std::atomic<int> n{0};
  return n;
}
inline bool interrupt_requested() { return interrupt_count().load() > 0; }

}  // namespace rb
