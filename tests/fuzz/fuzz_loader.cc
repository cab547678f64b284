// libFuzzer: the runbook loader. Arbitrary source text is declared in the sandbox (runbook{},
// step(), params) as `runbook exec` would, with no effects registered. Any outcome but a
// UsageError (a clear load error) or success is a finding: a crash, a sanitizer report, a hang
// past libFuzzer's -timeout (the loader's own declaration deadline is 10 s).
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "dispatch/registry.h"
#include "lua/runbook.h"

namespace {

const std::string& scratch_file() {
  static const std::string path = [] {
    auto dir = std::filesystem::temp_directory_path() / ("runbook-fuzz-loader-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return (dir / "rb.lua").string();
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const rb::Registry registry;  // no effects: declaration only
  {
    std::ofstream out(scratch_file(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    rb::Runbook book(registry, 64u << 20);
    book.load(scratch_file());
    std::vector<std::string> secrets;
    book.resolve_params({}, &secrets);  // the declared defaults go through the parser too
  } catch (const rb::UsageError&) {
  }
  return 0;
}
