// libFuzzer: duration parsing ("500ms", "1m30s", "2.5"). A finding is a crash, a sanitizer report
// (signed overflow on "99999999999999h"), a negative duration, or a formatted duration that the
// parser does not read back.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/duration.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = rb::parse_duration(text);
  if (!d) return 0;
  if (d->count() < 0) {
    std::fprintf(stderr, "fuzz_duration: '%.*s' parsed as negative %lld ms\n", static_cast<int>(size),
                 text.data(), static_cast<long long>(d->count()));
    std::abort();
  }
  std::string shown = rb::format_duration(*d);
  if (!rb::parse_duration(shown)) {
    std::fprintf(stderr, "fuzz_duration: format_duration gave '%s', which does not parse\n", shown.c_str());
    std::abort();
  }
  return 0;
}
