// config.toml: what people set once (journal, artifacts, colour, lock wait, notification
// defaults), with flags over the environment over the file over the defaults, shown by
// `runbook config`; a broken file is refused naming file:line, never half-read.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "support/support.h"

using namespace rb;
using namespace rb::test;
namespace fs = std::filesystem;

namespace {

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

struct World {
  TempDir dir;
  std::string cfg() const { return dir / "xdg/runbook/config.toml"; }
  void config(const std::string& text) const { write_file(cfg(), text); }
  // HOME and XDG_* point into the temp dir: nothing of the machine's own config is read.
  std::map<std::string, std::string> env(std::map<std::string, std::string> more = {}) const {
    std::map<std::string, std::string> e = {{"HOME", dir / "home"}, {"XDG_CONFIG_HOME", dir / "xdg"},
                                            {"XDG_STATE_HOME", dir / "state"}, {"RUNBOOK_JOURNAL", ""}, {"NO_COLOR", ""}};
    for (auto& [k, v] : more) e[k] = v;
    return e;
  }
  json settings(std::map<std::string, std::string> more = {}, std::vector<std::string> args = {}) const {
    std::vector<std::string> a = {"config", "--json"};
    a.insert(a.end(), args.begin(), args.end());
    auto r = run_cli(a, env(more));
    EXPECT_EQ(r.code, 0) << r.err;
    json out = json::object();
    json parsed = json::parse(r.out);
    for (const auto& v : parsed["values"]) out[v["key"].get<std::string>()] = v;
    return out;
  }
};

}  // namespace

TEST(Config, FlagsThenEnvironmentThenTheFileThenTheDefaults) {
  World w;
  auto d = w.settings();
  EXPECT_EQ(d["journal"]["source"], "default");
  EXPECT_EQ(d["journal"]["value"], w.dir / "state/runbook/journal.db");
  EXPECT_EQ(d["color"]["value"], "auto");

  w.config("# the team's settings\njournal = \"~/incidents/journal.db\"\nwait_lock = \"5m\"\ncolor = \"never\"\n");
  auto f = w.settings();
  EXPECT_EQ(f["journal"]["value"], w.dir / "home/incidents/journal.db");
  EXPECT_EQ(f["journal"]["source"], "file " + w.cfg() + ":2");
  EXPECT_EQ(f["artifacts"]["value"], w.dir / "home/incidents/artifacts") << "artifacts follow the journal by default";
  EXPECT_EQ(f["wait_lock"]["source"], "file " + w.cfg() + ":3");

  auto e = w.settings({{"RUNBOOK_JOURNAL", w.dir / "env.db"}, {"RUNBOOK_WAIT_LOCK", "1m"}});
  EXPECT_EQ(e["journal"]["value"], w.dir / "env.db");
  EXPECT_EQ(e["journal"]["source"], "environment RUNBOOK_JOURNAL");
  EXPECT_EQ(e["wait_lock"]["value"], "1m");

  // And the commands use it: a run goes to the file's journal, the environment's, the flag's.
  write_file(w.dir / "b.lua", "runbook { name = 'b', version = '1.0.0' }\nstep('x', function() log.info('hi') end)\n");
  ASSERT_EQ(run_cli({"exec", w.dir / "b.lua"}, w.env()).code, 0);
  EXPECT_TRUE(fs::exists(w.dir / "home/incidents/journal.db"));
  ASSERT_EQ(run_cli({"exec", w.dir / "b.lua"}, w.env({{"RUNBOOK_JOURNAL", w.dir / "env.db"}})).code, 0);
  EXPECT_TRUE(fs::exists(w.dir / "env.db"));
  ASSERT_EQ(run_cli({"exec", w.dir / "b.lua", "--journal", w.dir / "flag.db"}, w.env({{"RUNBOOK_JOURNAL", w.dir / "env.db"}})).code, 0);
  EXPECT_TRUE(fs::exists(w.dir / "flag.db"));
  auto runs = run_cli({"runs", "--json"}, w.env());
  EXPECT_EQ(runs.events().size(), 1u) << "runs reads the file's journal: " << runs.out;
  auto shown = run_cli({"config"}, w.env());
  EXPECT_TRUE(has(shown.out, "file " + w.cfg() + ":2")) << shown.out;
  EXPECT_TRUE(has(shown.out, "precedence: flag, then environment, then the file, then the default"));
}

TEST(Config, ColourAndArtifactsAndTheLockWaitTakeEffect) {
  World w;
  write_file(w.dir / "app/conf.ini", "old\n");
  write_file(w.dir / "b.lua", "runbook { name = 'b', version = '1.0.0', params = { f = { type = 'path' } } }\n"
                              "step('write', function(p) fs.write(p.f, 'new\\n') end)\n");
  w.config("color = \"always\"\nartifacts = \"" + w.dir / "kept" + "\"\njournal = \"" + w.dir / "j.db" + "\"\n");
  auto r = run_cli({"exec", w.dir / "b.lua", "-p", "f=" + w.dir / "app/conf.ini"}, w.env());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "\033[")) << "color = always colours a pipe";
  EXPECT_TRUE(fs::exists(w.dir / "kept/1")) << "the replaced file is kept under the configured artifacts";
  auto plain = run_cli({"exec", w.dir / "b.lua", "--no-color", "-p", "f=" + w.dir / "app/conf.ini"}, w.env());
  EXPECT_FALSE(has(plain.out, "\033[")) << "--no-color wins over the file";

  // wait_lock: a second run waits for the first one's lock instead of refusing at once.
  write_file(w.dir / "slow.lua", "runbook { name = 'slow', version = '1.0.0' }\nstep('hold', function() sleep('2s') end)\n");
  Child first({RUNBOOK_BIN, "exec", w.dir / "slow.lua"}, w.env(), w.dir / "first.log");
  bool held = false;
  for (int i = 0; i < 100 && !held; ++i) {
    held = has(run_cli({"locks"}, w.env()).out, "slow");
    if (!held) std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  ASSERT_TRUE(held);
  auto refused = run_cli({"exec", w.dir / "slow.lua"}, w.env());
  EXPECT_EQ(refused.code, 4) << "without a wait the lock is refused at once: " << refused.err;
  w.config("journal = \"" + w.dir / "j.db" + "\"\nwait_lock = \"30s\"\n");
  auto waited = run_cli({"exec", w.dir / "slow.lua"}, w.env());
  EXPECT_EQ(waited.code, 0) << "the config's wait_lock waited for the lock: " << waited.out << waited.err;
}

TEST(Config, NotifyDefaultsSendToTheConfiguredWebhookWithoutJournalingItsSecretPath) {
  World w;
  HttpServer server(w.dir / "xdg/srv");  // its request log holds the path: skipped with the config
  write_file(w.dir / "n.lua", "runbook { name = 'n', version = '1.0.0' }\nstep('tell', function() notify.webhook{ text = 'rolled back' } end)\n");
  // No webhook anywhere: the rehearsal fails as the live run would, naming what is missing.
  auto none = run_cli({"exec", w.dir / "n.lua", "--dry-run"}, w.env({{"RUNBOOK_JOURNAL", w.dir / "j.db"}}));
  EXPECT_NE(none.code, 0);
  EXPECT_TRUE(has(none.out + none.err, "no [notify] webhook in the config")) << none.out << none.err;

  std::string hook = server.url("/services/T0001/B0002/S3cretHookPath99");
  w.config("journal = \"" + w.dir / "j.db" + "\"\n[notify]\nwebhook = \"" + hook + "\"\n");
  auto dry = run_cli({"exec", w.dir / "n.lua", "--dry-run"}, w.env());
  ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_EQ(server.changing_requests(), 0);
  auto live = run_cli({"exec", w.dir / "n.lua"}, w.env());
  ASSERT_EQ(live.code, 0) << live.out << live.err;
  EXPECT_EQ(server.changing_requests(), 1) << "sent once, to the configured webhook";
  auto show = run_cli({"show", "last", "--json"}, w.env());
  auto cfg = run_cli({"config"}, w.env());
  for (const auto* out : {&dry.out, &live.out, &show.out, &cfg.out})
    EXPECT_FALSE(has(*out, "S3cretHookPath99")) << *out;
  EXPECT_TRUE(files_containing(w.dir.path(), "S3cretHookPath99", "xdg").empty())
      << "the webhook's path is written somewhere: " << files_containing(w.dir.path(), "S3cretHookPath99", "xdg").front();
  // A runbook that names its own url still uses it.
  write_file(w.dir / "own.lua", "runbook { name = 'own', version = '1.0.0' }\nstep('tell', function() notify.webhook{ url = '" +
                                    server.url("/own") + "', text = 'x' } end)\n");
  ASSERT_EQ(run_cli({"exec", w.dir / "own.lua"}, w.env()).code, 0);
  EXPECT_EQ(server.changing_requests(), 2);
}

TEST(Config, ABrokenFileIsRefusedNamingFileAndLineAndCanBeBypassed) {
  World w;
  write_file(w.dir / "b.lua", "runbook { name = 'b', version = '1.0.0' }\nstep('x', function() end)\n");
  struct Case {
    std::string text, expect;
  } cases[] = {
      {"journal = \"a.db\"\ncolor = \n", ":2: not valid TOML"},
      {"color = \"blue\"\n", ":1: color is auto, always or never, not 'blue'"},
      {"wait_lock = \"soon\"\n", ":1: wait_lock is a duration like 30s or 5m"},
      {"journal = 42\n", ":1: journal must be a string"},
      {"[notify]\nwebhook = \"ftp://x\"\n", ":2: notify.webhook is not an http(s) URL"},
      {"journal = " + std::string(5000, '[') + std::string(5000, ']') + "\n", "nested deeper than 32 levels"},
      {"x = \"" + std::string(2 << 20, 'a') + "\"\n", "larger than 1 MiB"},
  };
  for (const auto& c : cases) {
    w.config(c.text);
    auto r = run_cli({"exec", w.dir / "b.lua"}, w.env());
    EXPECT_EQ(r.code, 2) << c.expect;
    EXPECT_TRUE(has(r.err, w.cfg())) << r.err;
    EXPECT_TRUE(has(r.err, c.expect)) << c.expect << "\n" << r.err;
    EXPECT_TRUE(has(r.err, "RUNBOOK_CONFIG=none")) << r.err;
    auto bypass = run_cli({"exec", w.dir / "b.lua"}, w.env({{"RUNBOOK_CONFIG", "none"}}));
    EXPECT_EQ(bypass.code, 0) << bypass.err;
  }
  // An unknown key is a warning with the nearest name, not a refusal.
  w.config("jornal = \"x.db\"\n[notify]\nweb_hook = \"https://h.example\"\n");
  auto r = run_cli({"exec", w.dir / "b.lua"}, w.env());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.err, ":1: unknown key 'jornal' ignored (did you mean 'journal'?)")) << r.err;
  EXPECT_TRUE(has(r.err, ":3: unknown key 'notify.web_hook' ignored (did you mean 'notify.webhook'?)")) << r.err;
  // A bad value in the environment is named too.
  auto env_bad = run_cli({"runs"}, w.env({{"RUNBOOK_COLOR", "sometimes"}}));
  EXPECT_EQ(env_bad.code, 2);
  EXPECT_TRUE(has(env_bad.err, "RUNBOOK_COLOR is auto, always or never")) << env_bad.err;
}
