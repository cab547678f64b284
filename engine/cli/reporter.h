// The two faces of a run: lines for people (steps, one line per effect with ✓/✗/~ and its
// duration, a live countdown while waiting) and one JSON event per line for programs.
#pragma once
#include <cstdio>
#include <memory>

#include "cli/terminal.h"
#include "dispatch/reporter.h"

namespace rb::cli {

struct ReporterOptions {
  bool json = false;
  bool color = false;
  bool tty = false;  // progress lines only on a terminal
  bool verbose = false;
  FILE* out = stdout;
};

std::unique_ptr<Reporter> make_reporter(const ReporterOptions& o);

// One-line rendering of a result for people: short JSON, long strings cut.
std::string brief(const json& v, size_t max = 160);

}  // namespace rb::cli
