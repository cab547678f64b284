// sleep, confirm, env.get, time.now: the run's inputs from outside the runbook. Each is an effect
// so that it is journaled and replay follows the same path (a replay neither sleeps nor asks).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/clock.h"
#include "core/strings.h"
#include "effects/effects.h"
#include "effects/util.h"

namespace rb {
namespace {

void add_sleep(Registry& r) {
  Effect e;
  e.name = "sleep";
  e.summary = "Wait for a duration (prefer http.wait_healthy or wait.until: poll, don't sleep)";
  e.kind = Kind::Wait;
  e.args = {req("duration", ArgType::Duration, "how long: \"500ms\", \"5s\"")};
  e.positional = {"duration"};
  e.returns = "{ slept (ms) }";
  e.describe = [](const Args& a) { return "sleep " + format_duration(a.duration("duration")); };
  e.apply = [](EffectContext& ctx, const Args& a) {
    Millis want = a.duration("duration");
    auto t0 = std::chrono::steady_clock::now();
    auto until = t0 + want;
    while (std::chrono::steady_clock::now() < until) {
      ctx.check_interrupt();
      auto left = std::chrono::duration_cast<Millis>(until - std::chrono::steady_clock::now());
      ctx.progress("sleeping, " + format_duration(left) + " left");
      std::this_thread::sleep_for(std::min(left, Millis(100)));
    }
    auto slept = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0);
    return json{{"slept", slept.count()}};
  };
  e.planned = [](const Args& a, const json&) { return json{{"slept", 0}}; };
  r.add(std::move(e));
}

void add_confirm(Registry& r) {
  Effect e;
  e.name = "confirm";
  e.summary = "Ask the operator a yes/no question on the terminal; the answer is journaled";
  e.kind = Kind::Input;
  e.args = {req("question", ArgType::String, "the question"),
            opt("stop", ArgType::Bool, "true: a 'no' stops the runbook with an error; false: returns false", true)};
  e.positional = {"question"};
  e.returns = "true (yes) or false (no, with stop = false)";
  e.describe = [](const Args& a) { return "ask \"" + a.str("question") + "\""; };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string q = a.str("question");
    if (ctx.assume_yes()) {
      ctx.note("confirm: \"" + q + "\" answered yes by --yes");
      return true;
    }
    if (!ctx.interactive())
      throw EffectError("no terminal to ask \"" + q + "\"; run with --yes to answer yes");
    FILE* tty = std::fopen("/dev/tty", "r+");
    if (!tty) throw EffectError("cannot open the terminal to ask \"" + q + "\"; use --yes");
    std::fprintf(tty, "\n  ? %s [y/N] ", q.c_str());
    std::fflush(tty);
    char buf[256] = {0};
    bool got = std::fgets(buf, sizeof buf, tty) != nullptr;
    std::fclose(tty);
    std::string answer = got ? trim(buf) : "";
    bool yes = answer == "y" || answer == "Y" || answer == "yes" || answer == "YES";
    ctx.note("confirm: \"" + q + "\" answered " + (yes ? "yes" : "no"));
    if (!yes && a.boolean("stop", true)) throw EffectError("the operator answered no to \"" + q + "\"");
    return yes;
  };
  e.planned = [](const Args&, const json&) { return true; };
  r.add(std::move(e));
}

void add_env(Registry& r) {
  Effect e;
  e.name = "env.get";
  e.summary = "Read an environment variable (journaled, so replay sees the same value)";
  e.kind = Kind::Probe;
  e.args = {req("name", ArgType::String, "variable name"),
            opt("default", ArgType::String, "value when unset")};
  e.positional = {"name", "default"};
  e.returns = "the value, or the default (nil when unset and no default)";
  e.describe = [](const Args& a) { return "read $" + a.str("name"); };
  e.apply = [](EffectContext&, const Args& a) -> json {
    const char* v = std::getenv(a.str("name").c_str());
    if (v) return std::string(v);
    return a.has("default") ? json(a.str("default")) : json(nullptr);
  };
  e.planned = [](const Args& a, const json&) -> json {
    return a.has("default") ? json(a.str("default")) : json("");
  };
  r.add(std::move(e));
}

void add_time(Registry& r) {
  Effect e;
  e.name = "time.now";
  e.summary = "The current time in seconds since the epoch (journaled, so replay sees the same)";
  e.kind = Kind::Probe;
  e.returns = "number of seconds (with milliseconds)";
  e.describe = [](const Args&) { return std::string("read the clock"); };
  e.apply = [](EffectContext&, const Args&) -> json { return now_epoch_ms() / 1000.0; };
  e.planned = [](const Args&, const json&) -> json { return now_epoch_ms() / 1000.0; };
  r.add(std::move(e));
}

}  // namespace

void register_basic(Registry& r) {
  add_sleep(r);
  add_confirm(r);
  add_env(r);
  add_time(r);
}

}  // namespace rb
