// sleep, confirm, env.get, time.now: the run's inputs from outside the runbook. Each is an effect
// so that it is journaled and replay follows the same path (a replay neither sleeps nor asks).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/clock.h"
#include "core/secrets.h"
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
  e.results = {{"slept", "integer", "milliseconds slept"}};
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
            opt("default", ArgType::String, "value when unset"),
            opt("secret", ArgType::Bool,
                "true: the value is a secret, redacted everywhere (implied when the name "
                "contains TOKEN, SECRET, PASSWORD, PASSWD, PASS, KEY, CREDENTIAL, AUTH or PAT)",
                false)};
  e.positional = {"name", "default"};
  e.returns = "the value, or the default (nil when unset and no default)";
  e.describe = [](const Args& a) {
    return "read $" + a.str("name") + (a.boolean("secret") || secret_name(a.str("name")) ? " (secret)" : "");
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    std::string name = a.str("name");
    bool secret = a.boolean("secret") || secret_name(name);
    const char* v = std::getenv(name.c_str());
    json out = v ? json(std::string(v)) : a.has("default") ? json(a.str("default")) : json(nullptr);
    // Registered before the dispatcher records the result: the journal, the output and every
    // later argument holding it (exec{ env = ... }) get "***"; the runbook gets the value.
    if (secret && out.is_string()) ctx.add_secret(out.get<std::string>());
    return out;
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

// What an assessment concluded, recorded so that `runbook report` shows it as the trigger: the
// level or decision and the numbers behind it. Changes nothing, so it is a probe (it runs in a
// dry-run, and a replay answers it from the journal).
void add_trigger(Registry& r) {
  Effect e;
  e.name = "report.trigger";
  e.summary = "Record an assessment (alert level or decision, with the numbers behind it) as the run's trigger; `runbook report` shows it";
  e.kind = Kind::Probe;
  e.args = {req("level", ArgType::String, "the alert level or severity: \"RED\", \"P1\", \"GREEN\""),
            opt("decision", ArgType::String, "what the assessment decides: \"rollback\", \"disable flag\", \"investigate\""),
            opt("reasons", ArgType::List, "the conditions that held, each with its numbers"),
            opt("measures", ArgType::Map, "the measured values by name: { error_rate = 3.2, p95_ms = 410 }")};
  e.positional = {"level", "decision"};
  e.returns = "{ level, decision, reasons, measures, text }";
  e.results = {{"level", "string", "the level given"}, {"decision", "string", "the decision, or nil"}, {"reasons", "list", "the reasons given"}, {"measures", "map", "the measures given"}, {"text", "string", "one line: level: decision (reasons)"}};
  e.describe = [](const Args& a) {
    return "assessment: " + a.str("level") + (a.has("decision") ? " — " + a.str("decision") : "");
  };
  auto result = [](const Args& a) -> json {
    json reasons = a.has("reasons") ? json(a.strings("reasons")) : json::array();
    json measures = a.raw().contains("measures") && a.raw()["measures"].is_object() ? a.raw()["measures"]
                                                                                    : json::object();
    std::string text = a.str("level");
    if (a.has("decision")) text += ": " + a.str("decision");
    std::string why;
    for (const auto& x : reasons) why += (why.empty() ? "" : "; ") + x.get<std::string>();
    if (!why.empty()) text += " (" + why + ")";
    if (text.size() > 2000) text = text.substr(0, 2000) + "…";
    return json{{"level", a.str("level")}, {"decision", a.has("decision") ? json(a.str("decision")) : json(nullptr)},
                {"reasons", reasons}, {"measures", measures}, {"text", text}};
  };
  e.apply = [result](EffectContext& ctx, const Args& a) -> json {
    json out = result(a);
    ctx.note("trigger: " + out["text"].get<std::string>());
    return out;
  };
  e.planned = [result](const Args& a, const json&) -> json { return result(a); };
  r.add(std::move(e));
}

}  // namespace

void register_basic(Registry& r) {
  add_trigger(r);
  add_sleep(r);
  add_confirm(r);
  add_env(r);
  add_time(r);
}

}  // namespace rb
