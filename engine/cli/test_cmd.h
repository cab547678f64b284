// `runbook test`: runs `*_test.lua` files, whose cases run runbooks with their effects faked
// (stdlib/runbook/test.lua is what a test file requires; this file is its engine), and
// `runbook test --from-run RUN`, which writes a test file from a journaled run.
#pragma once
#include <string>
#include <vector>

namespace rb::cli {

struct TestFlags {
  std::vector<std::string> paths;  // files and directories (searched for *_test.lua)
  std::string junit;               // --junit FILE
  bool json = false;               // one event per line
  std::string timeout = "60s";     // per case
  std::string from_run;            // --from-run RUN: write a test file instead
  std::string output;              // with --from-run: the file to write ("" = stdout)
  std::string journal_path;        // with --from-run
};

int cmd_test(const TestFlags& f);

}  // namespace rb::cli
