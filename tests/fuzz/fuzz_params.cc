// libFuzzer: the parameter parser. The input is `-p name=value` text, one per line, applied to a
// runbook declaring one parameter of every type. Besides crashes and sanitizer reports, a finding
// is a typed value the journal cannot hold (NaN, Inf) or of the wrong JSON type.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "core/error.h"
#include "dispatch/registry.h"
#include "lua/runbook.h"

namespace {

const char* kDeclaration = R"(runbook {
  name = "fuzz-params", version = "1.0.0",
  params = {
    s = { type = "string" }, i = { type = "int" }, n = { type = "number" },
    b = { type = "bool" }, p = { type = "path" }, u = { type = "url" },
    d = { type = "duration" }, l = { type = "list" },
    c = { type = "string", choices = { "L1", "L2", "L3" } },
    secret = { type = "string", secret = true },
  },
}
step("x", function() end)
)";

rb::Runbook& book() {
  static const rb::Registry registry;
  static rb::Runbook* b = [] {
    auto dir = std::filesystem::temp_directory_path() / ("runbook-fuzz-params-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string file = (dir / "rb.lua").string();
    std::ofstream(file) << kDeclaration;
    auto* r = new rb::Runbook(registry);
    r->load(file);
    return r;
  }();
  return *b;
}

void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_params: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<std::string, std::string> given;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    given[line.substr(0, eq)] = line.substr(eq + 1);  // as the CLI splits -p name=value
  }
  try {
    std::vector<std::string> secrets;
    rb::json v = book().resolve_params(given, &secrets);
    for (const char* k : {"n", "i"}) {
      if (!v.contains(k)) continue;
      if (!v[k].is_number()) finding(std::string(k) + " is not a number: " + v[k].dump());
      if (v[k].is_number_float() && !std::isfinite(v[k].get<double>()))
        finding(std::string(k) + " accepted a non-finite number from '" + given[k] + "'");
    }
    if (v.contains("l") && !v["l"].is_array()) finding("the list parameter is " + v["l"].dump());
    if (v.contains("b") && !v["b"].is_boolean()) finding("the bool parameter is " + v["b"].dump());
    if (v.contains("c")) {
      std::string c = v["c"].is_string() ? v["c"].get<std::string>() : "";
      if (c != "L1" && c != "L2" && c != "L3") finding("a value outside choices: " + v["c"].dump());
    }
    // What the journal stores must serialize, as the journal does (invalid UTF-8 replaced).
    v.dump(-1, ' ', false, rb::json::error_handler_t::replace);
  } catch (const rb::UsageError&) {
  }
  return 0;
}
