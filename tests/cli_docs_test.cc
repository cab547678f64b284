// The completion scripts and the man page, generated from the CLI definitions, as their shells
// and man read them: bash's completion function called as readline calls it (COMP_WORDS,
// COMP_CWORD), fish's `complete -C`, zsh parsing and loading its script, groff rendering
// runbook(1) without a warning. The tools are Debian's (zsh, fish, groff-base): a missing one
// fails the test.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "os/process.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace stdfs = std::filesystem;

namespace {

const std::string kBinDir = stdfs::path(RUNBOOK_BIN).parent_path().string();

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string squote(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

class CliDocs : public ::testing::Test {
 protected:
  void SetUp() override {
    journal_ = dir_ / "journal.db";
    write_file(dir_ / "book.lua",
               "runbook { name = 'book', version = '1.0.0', params = {\n"
               "  dir = { type = 'path', default = '/tmp' },\n"
               "  tries = { type = 'int', default = 3 },\n"
               "  release_tag = { type = 'string', default = 'v1' } } }\n"
               "print('noise at load time')\n"
               "step('s', function(p) log.info('hi') end)\n");
    for (int i = 0; i < 2; ++i) {
      auto r = run_cli({"exec", dir_ / "book.lua", "--journal", journal_});
      ASSERT_EQ(r.code, 0) << r.out << r.err;
    }
    for (const std::string shell : {"bash", "zsh", "fish"}) {
      auto r = run_cli({"completion", shell});
      ASSERT_EQ(r.code, 0) << r.err;
      ASSERT_FALSE(r.out.empty());
      scripts_[shell] = dir_ / ("runbook." + shell);
      write_file(scripts_[shell], r.out);
    }
    stdfs::create_directories(dir_ / "home");
  }

  // Runs a program with the built runbook first in PATH, a private HOME and the test journal.
  os::ProcessResult run(const std::vector<std::string>& argv, std::map<std::string, std::string> env = {}) {
    os::ProcessSpec spec;
    spec.argv = argv;
    spec.cwd = dir_.path();
    const char* path = std::getenv("PATH");
    spec.env = {{"PATH", kBinDir + ":" + (path ? path : "/usr/bin:/bin")},
                {"HOME", dir_ / "home"},
                {"XDG_CONFIG_HOME", dir_ / "home/.config"},
                {"XDG_DATA_HOME", dir_ / "home/.local/share"},
                {"RUNBOOK_JOURNAL", journal_}};
    for (auto& [k, v] : env) spec.env[k] = v;
    spec.timeout = std::chrono::seconds(60);
    return os::run_process(spec);
  }

  // COMPREPLY after bash's completion function for `words` (the last one is being completed).
  std::vector<std::string> bash_complete(const std::vector<std::string>& words) {
    std::string arr;
    for (const auto& w : words) arr += " " + squote(w);
    std::string script = "source " + squote(scripts_["bash"]) + "\nCOMP_WORDS=(" + arr + ")\nCOMP_CWORD=" +
                         std::to_string(words.size() - 1) + "\n_runbook\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
    auto r = run({"bash", "--norc", "--noprofile", "-c", script});
    EXPECT_EQ(r.code, 0) << r.stderr_text << r.spawn_error;
    EXPECT_EQ(r.stderr_text, "");
    std::vector<std::string> out;
    for (const auto& l : lines_of(r.stdout_text))
      if (!l.empty()) out.push_back(l);
    return out;
  }

  // The candidates (first field) fish offers for a command line.
  std::vector<std::string> fish_complete(const std::string& line) {
    auto r = run({"fish", "--no-config", "-c", "source " + squote(scripts_["fish"]) + "; complete -C " + squote(line)});
    EXPECT_EQ(r.code, 0) << r.stderr_text << r.spawn_error;
    std::vector<std::string> out;
    for (const auto& l : lines_of(r.stdout_text)) out.push_back(l.substr(0, l.find('\t')));
    return out;
  }

  TempDir dir_;
  std::string journal_;
  std::map<std::string, std::string> scripts_;
};

}  // namespace

TEST_F(CliDocs, BashCompletesCommandsOptionsRunIdsParamsAndShells) {
  EXPECT_EQ(bash_complete({"runbook", "e"}), std::vector<std::string>{"exec"});
  auto all = bash_complete({"runbook", ""});
  for (const std::string c : {"exec", "check", "lint", "runs", "show", "replay", "resume", "report", "stats", "api",
                              "test", "completion", "man", "--version", "--help"})
    EXPECT_TRUE(has(all, c)) << c;
  EXPECT_FALSE(has(all, "__complete")) << "the hidden command is offered";
  EXPECT_EQ(bash_complete({"runbook", "exec", "--dr"}), std::vector<std::string>{"--dry-run"});
  EXPECT_EQ(bash_complete({"runbook", "exec", "book.lua", "--of"}), std::vector<std::string>{"--offline"});
  // Run ids from the journal ($RUNBOOK_JOURNAL), newest first, and "last".
  EXPECT_EQ(bash_complete({"runbook", "show", ""}), (std::vector<std::string>{"last", "2", "1"}));
  EXPECT_EQ(bash_complete({"runbook", "resume", "--yes", "l"}), std::vector<std::string>{"last"});
  // Another journal named on the line: its runs (none: it does not exist, and is not created).
  EXPECT_EQ(bash_complete({"runbook", "show", "--journal", dir_ / "other.db", ""}), std::vector<std::string>{"last"});
  EXPECT_FALSE(stdfs::exists(dir_ / "other.db"));
  // Parameter names of the runbook on the line (what it prints while loading is not one).
  auto params = bash_complete({"runbook", "exec", "book.lua", "-p", ""});
  EXPECT_EQ(std::set<std::string>(params.begin(), params.end()),
            (std::set<std::string>{"dir=", "tries=", "release_tag="}));
  EXPECT_EQ(bash_complete({"runbook", "exec", "--dry-run", "book.lua", "--param", "tr"}), std::vector<std::string>{"tries="});
  EXPECT_EQ(bash_complete({"runbook", "exec", "missing.lua", "-p", ""}), std::vector<std::string>{});
  // Files for a runbook and for an option that names one.
  EXPECT_TRUE(has(bash_complete({"runbook", "exec", "bo"}), "book.lua"));
  EXPECT_TRUE(has(bash_complete({"runbook", "exec", "--param-file", "bo"}), "book.lua"));
  EXPECT_EQ(bash_complete({"runbook", "completion", ""}), (std::vector<std::string>{"bash", "zsh", "fish"}));
  EXPECT_EQ(bash_complete({"runbook", "completion", "z"}), std::vector<std::string>{"zsh"});
}

TEST_F(CliDocs, TheHiddenCompleteCommandIsSilentAndNeverCreatesAJournal) {
  auto runs = run_cli({"__complete", "runs", "--journal", journal_});
  EXPECT_EQ(runs.code, 0);
  auto l = lines_of(runs.out);
  ASSERT_EQ(l.size(), 2u) << runs.out;
  EXPECT_TRUE(std::regex_match(l[0], std::regex("2\tbook succeeded \\d{4}-\\d\\d-\\d\\dT.*"))) << l[0];
  auto none = run_cli({"__complete", "runs", "--journal", dir_ / "no/such.db"});
  EXPECT_EQ(none.code, 0);
  EXPECT_EQ(none.out + none.err, "");
  EXPECT_FALSE(stdfs::exists(dir_ / "no"));
  write_file(dir_ / "junk.db", std::string(10000, 'x'));
  auto junk = run_cli({"__complete", "runs", "--journal", dir_ / "junk.db"});
  EXPECT_EQ(junk.code, 0);
  EXPECT_EQ(junk.out + junk.err, "");
  write_file(dir_ / "broken.lua", "runbook { name = 'b', version = '1.0.0' \n");
  auto broken = run_cli({"__complete", "params", dir_ / "broken.lua"});
  EXPECT_EQ(broken.code, 0);
  EXPECT_EQ(broken.out, "");
  // A runbook whose top level never ends does not hang the shell.
  write_file(dir_ / "loop.lua", "while true do end\n");
  auto t0 = std::chrono::steady_clock::now();
  auto loop = run_cli({"__complete", "params", dir_ / "loop.lua"}, {}, 30);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(loop.out, "");
  auto help = run_cli({"--help"});
  EXPECT_EQ(help.out.find("__complete"), std::string::npos) << help.out;
}

TEST_F(CliDocs, FishCompletesCommandsOptionsRunIdsAndParams) {
  EXPECT_EQ(fish_complete("runbook ex"), std::vector<std::string>{"exec"});
  EXPECT_EQ(fish_complete("runbook exec --dr"), std::vector<std::string>{"--dry-run"});
  auto shown = fish_complete("runbook show ");
  EXPECT_TRUE(has(shown, "last") && has(shown, "1") && has(shown, "2")) << ::testing::PrintToString(shown);
  auto params = fish_complete("runbook exec book.lua -p ");
  EXPECT_EQ(std::set<std::string>(params.begin(), params.end()),
            (std::set<std::string>{"dir=", "tries=", "release_tag="}));
  auto shells = fish_complete("runbook completion ");
  EXPECT_EQ(std::set<std::string>(shells.begin(), shells.end()), (std::set<std::string>{"bash", "zsh", "fish"}));
}

TEST_F(CliDocs, ZshParsesAndLoadsItsScript) {
  auto n = run({"zsh", "-n", scripts_["zsh"]});
  EXPECT_EQ(n.code, 0) << n.stderr_text << n.spawn_error;
  EXPECT_EQ(n.stderr_text, "");
  // As a user's .zshrc does: compinit, then the script (as a file of $fpath and sourced).
  stdfs::create_directories(dir_ / "fpath");
  write_file(dir_ / "fpath/_runbook", read_file(scripts_["zsh"]));
  auto loaded = run({"zsh", "-fc",
                     "fpath=(" + squote(dir_ / "fpath") + " $fpath); autoload -Uz compinit && compinit -u -d " +
                         squote(dir_ / "zcompdump") + " && print -r -- ${_comps[runbook]} && source " +
                         squote(scripts_["zsh"]) + " && print -r -- ${_comps[runbook]} && whence -w _runbook_runs"});
  EXPECT_EQ(loaded.code, 0) << loaded.stderr_text << loaded.spawn_error;
  EXPECT_EQ(loaded.stderr_text, "");
  EXPECT_EQ(loaded.stdout_text, "_runbook\n_runbook\n_runbook_runs: function\n");
}

// zsh completing for real: an interactive zsh on a pseudo-terminal (zsh/zpty) with compinit and
// the script in $fpath, Tab pressed after each line; each read waits for the expected text (the
// process timeout fails the test if it never comes).
TEST_F(CliDocs, ZshCompletesCommandsOptionsRunIdsAndParamsOnATerminal) {
  stdfs::create_directories(dir_ / "fpath");
  write_file(dir_ / "fpath/_runbook", read_file(scripts_["zsh"]));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"runbook exec --dr", "--dry-run"},
      {"runbook comp", "completion"},
      {"runbook exec book.lua -p ", "release_tag="},
      {"runbook completion ", "fish"},
      {"runbook show ", "book succeeded"},
  };
  std::string drive =
      "zmodload zsh/zpty\n"
      "zpty -b z zsh -f -i\n"
      "zpty -w z \"PS1='%% '; fpath=(" + dir_ / "fpath" + " \\$fpath); autoload -Uz compinit; compinit -u -d " +
      dir_ / "zcompdump" + "; zstyle ':completion:*' verbose yes; print RE''ADY\"\n"
      "zpty -r z out '*READY*' || exit 1\n";
  for (const auto& [line, want] : cases)
    drive += "zpty -w -n z " + squote(line) + "$'\\t'\nzpty -r z out " + squote("*" + want + "*") +
             " || exit 1\nprint -r -- " + squote("completed: " + line) + "\nzpty -w -n z $'\\C-u'\n";
  drive += "zpty -d z\n";
  auto r = run({"zsh", "-fc", drive});
  EXPECT_EQ(r.code, 0) << r.stderr_text << r.spawn_error << (r.timed_out ? " (timed out)" : "");
  for (const auto& [line, want] : cases)
    EXPECT_NE(r.stdout_text.find("completed: " + line), std::string::npos) << line << " did not offer " << want;
}

TEST_F(CliDocs, ManPageRendersWithoutWarningsAndDocumentsEveryCommandAndOption) {
  auto man = run_cli({"man"});
  ASSERT_EQ(man.code, 0) << man.err;
  write_file(dir_ / "runbook.1", man.out);
  auto check = run({"groff", "-man", "-ww", "-z", dir_ / "runbook.1"});
  EXPECT_EQ(check.code, 0) << check.spawn_error;
  EXPECT_EQ(check.stderr_text, "");
  auto text = run({"groff", "-man", "-Tascii", "-P-cbou", dir_ / "runbook.1"});
  ASSERT_EQ(text.code, 0) << text.stderr_text;
  const std::string& page = text.stdout_text;
  for (const std::string section : {"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES"})
    EXPECT_NE(page.find("\n" + section + "\n"), std::string::npos) << section;
  // Every command `runbook --help` lists.
  auto help = run_cli({"--help"});
  bool in_subs = false;
  int commands = 0;
  for (const auto& l : lines_of(help.out)) {
    if (l.rfind("Subcommands:", 0) == 0) {
      in_subs = true;
      continue;
    }
    std::smatch m;
    if (in_subs && std::regex_search(l, m, std::regex(R"(^  ([a-z]+)\s)"))) {
      ++commands;
      EXPECT_NE(page.find("runbook " + m[1].str()), std::string::npos) << m[1];
    } else if (in_subs && l.empty()) {
      in_subs = false;
    }
  }
  EXPECT_GE(commands, 13);
  // Every option `runbook exec --help` shows.
  auto exec_help = run_cli({"exec", "--help"});
  int options = 0;
  for (const auto& l : lines_of(exec_help.out)) {
    std::smatch m;
    if (!std::regex_search(l, m, std::regex(R"(^\s+(-[-A-Za-z0-9,]+))"))) continue;
    std::stringstream names(m[1].str());
    for (std::string n; std::getline(names, n, ',');) {
      ++options;
      EXPECT_NE(page.find(n), std::string::npos) << n;
    }
  }
  EXPECT_GE(options, 14);
  // The exit statuses, from the same text --help prints.
  EXPECT_NE(page.find("130"), std::string::npos);
  EXPECT_NE(page.find("stopped at a change in doubt"), std::string::npos);
}
