#include "cli/usage.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "lua/runbook.h"

namespace rb::cli {
namespace {

// Edit distance (insert, delete, substitute, swap of neighbours), bounded: both words are cut
// at 64 characters, so a hostile argv costs nothing.
size_t distance(std::string a, std::string b) {
  a = a.substr(0, 64);
  b = b.substr(0, 64);
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, sub});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

}  // namespace

int check_command_word(const CLI::App& app, int argc, char** argv) {
  if (argc < 2) {
    std::fputs(app.help().c_str(), stderr);
    return kExitUsage;
  }
  std::string word = argv[1];
  if (word.empty() || word[0] == '-') return -1;  // an option (--help, --version): CLI11's
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->check_name(word)) return -1;
    if (!sub->get_group().empty()) names.push_back(sub->get_name());  // hidden ones (__complete) unnamed
  }
  std::string shown = word.size() > 64 ? word.substr(0, 64) + "..." : word;
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& n : names) {
    size_t dd = distance(word, n);
    if (dd < best_d) best_d = dd, best = n;
  }
  // Close: a typo or two, never more than a third of the name.
  bool close = !best.empty() && best_d <= std::max<size_t>(1, std::min<size_t>(2, best.size() / 3));
  if (!close) {
    // A prefix of one command only (`runbook rep` -> replay, report: not close; `runbook exe`).
    std::string only;
    int n = 0;
    for (const auto& c : names)
      if (word.size() >= 2 && c.rfind(word, 0) == 0) only = c, ++n;
    if (n == 1) best = only, close = true;
  }
  if (word == "help") best = "--help", close = true;
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  std::fprintf(stderr, "runbook: unknown command '%s'%s\ncommands: %s\n(runbook --help for each one's purpose)\n",
               shown.c_str(), close ? (": did you mean '" + best + "'?").c_str() : "", list.c_str());
  return kExitUsage;
}

}  // namespace rb::cli
