// The dispatcher's prediction overlay and the rehearsal's unknowns, with effects made for the
// test (a key-value "world" in memory): a planned change predicts what later probes answer, a
// probe it cannot predict answers an unknown, a step that fails after using an unknown is
// "checked live only", and a preview that finds the live call would fail fails the dry-run.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/unknown.h"
#include "support/support.h"

using namespace rb;
using namespace rb::test;

namespace {

std::map<std::string, std::string>& world() {
  static std::map<std::string, std::string> w;
  return w;
}

Registry make_registry() {
  Registry r;
  Effect set;
  set.name = "t.set";
  set.kind = Kind::Change;
  set.args = {{"key", ArgType::String, true, nullptr, false, ""}, {"value", ArgType::String, true, nullptr, false, ""}};
  set.describe = [](const Args& a) { return "set " + a.str("key"); };
  set.preview = [](EffectContext&, const Args& a) -> json {
    if (a.str("key") == "locked") throw WouldFail("key 'locked' is read-only");
    return json{{"text", "would set"}, {"basis", {{"was", world()[a.str("key")]}}}};
  };
  set.apply = [](EffectContext&, const Args& a) -> json {
    world()[a.str("key")] = a.str("value");
    return json{{"key", a.str("key")}};
  };
  set.results = {{"key", "string", "the key set"}};
  set.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
    ctx.predictions()["t"][a.str("key")] = a.str("value");
  };
  r.add(set);

  Effect get;
  get.name = "t.get";
  get.kind = Kind::Probe;
  get.args = {{"key", ArgType::String, true, nullptr, false, ""}};
  get.positional = {"key"};
  get.apply = [](EffectContext&, const Args& a) -> json {
    return json{{"value", world()[a.str("key")]}};
  };
  get.results = {{"value", "string", "its value"}};
  get.predicted = [](EffectContext& ctx, const Args& a) -> json {
    json& p = ctx.predictions();
    if (p.contains("taint") && p["taint"].contains("t"))
      return unknown_value("t.get " + a.str("key") + " after " + p["taint"]["t"].get<std::string>());
    if (!p.contains("t") || !p["t"].contains(a.str("key"))) return nullptr;
    return json{{"value", p["t"][a.str("key")]}};
  };
  r.add(get);

  Effect restart;
  restart.name = "t.restart";
  restart.kind = Kind::Change;
  restart.describe = [](const Args&) { return "restart the world"; };
  restart.apply = [](EffectContext&, const Args&) -> json { return json::object(); };
  restart.predict = [](EffectContext& ctx, const Args&, const json&, const json&) {
    ctx.predictions()["taint"]["t"] = "t.restart";
  };
  r.add(restart);
  return r;
}

const Registry& registry() {
  static Registry r = make_registry();
  return r;
}

struct Run {
  ExecResult result;
  Captured events;
  RunRecord run;
  std::vector<EffectRecord> effects;
};

Run run(const std::string& body, Mode mode = Mode::DryRun) {
  TempDir d;
  write_file(d.path() + "/rb.lua", "runbook { name = 'p', version = '1.0.0' }\n" + body);
  Journal journal(d.path() + "/journal.db");
  ExecRequest req;
  req.file = d.path() + "/rb.lua";
  req.options.mode = mode;
  Run out;
  out.result = execute(req, &journal, &out.events, registry());
  if (out.result.run_id) {
    out.run = *journal.run(out.result.run_id);
    out.effects = journal.effects(out.result.run_id);
  }
  return out;
}

}  // namespace

TEST(Predict, AProbeAfterAPlannedChangeAnswersThePrediction) {
  world()["colour"] = "red";
  auto r = run(R"(
step('change', function() t.set{ key = 'colour', value = 'blue' } end)
step('verify', function()
  local v = t.get('colour')
  if v.value ~= 'blue' then error('still ' .. tostring(v.value)) end
end)
)");
  EXPECT_EQ(r.result.exit_code, kExitOk) << r.result.error;
  ASSERT_EQ(r.effects.size(), 2u);
  EXPECT_EQ(r.effects[1].state, "predicted");
  EXPECT_EQ(r.effects[1].result["value"], "blue");
  EXPECT_EQ(world()["colour"], "red") << "a dry-run changed the world";
  EXPECT_EQ(r.events.effects[1].status, "predicted");
}

TEST(Predict, AVerificationThatContradictsThePredictionFailsTheRehearsal) {
  world()["colour"] = "red";
  auto r = run(R"(
step('change', function() t.set{ key = 'colour', value = 'blue' } end)
step('verify', function()
  if t.get('colour').value ~= 'green' then error('colour is not green') end
end)
)");
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_NE(r.result.error.find("colour is not green"), std::string::npos) << r.result.error;
}

TEST(Predict, UntouchedObjectsAreProbedLive) {
  world()["size"] = "10";
  auto r = run(R"(
step('s', function()
  t.set{ key = 'colour', value = 'blue' }
  assert(t.get('size').value == '10')
end)
)");
  EXPECT_EQ(r.result.exit_code, kExitOk) << r.result.error;
  EXPECT_EQ(r.effects[1].state, "done");
}

TEST(Predict, AStepThatFailsOnAnUnknownIsCheckedLiveOnly) {
  auto r = run(R"(
step('restart', function() t.restart() end)
step('verify', function()
  local h = t.get('health')
  if h.status ~= 200 then error('unhealthy: ' .. tostring(h.status)) end
end)
step('after', function() t.set{ key = 'done', value = 'yes' } end)
)");
  EXPECT_EQ(r.result.exit_code, kExitOk) << r.result.error;
  EXPECT_EQ(r.events.step_outcomes[1], "2:live-only");
  EXPECT_EQ(r.events.step_outcomes[2], "3:succeeded");
  ASSERT_TRUE(r.run.extra.contains("checked_live_only")) << r.run.extra.dump();
  const json& c = r.run.extra["checked_live_only"];
  bool step_listed = false, probe_listed = false;
  for (const auto& x : c) {
    step_listed = step_listed || (x["what"] == "step" && x["step"] == 2);
    probe_listed = probe_listed || (x["what"] == "result" && x["name"] == "t.get");
  }
  EXPECT_TRUE(step_listed) << c.dump();
  EXPECT_TRUE(probe_listed) << c.dump();
  EXPECT_NE(c.dump().find("t.get health after t.restart"), std::string::npos) << c.dump();
}

TEST(Predict, AFailureNotCausedByAnUnknownStillFailsTheRehearsal) {
  auto r = run(R"(
step('restart', function() t.restart() end)
step('verify', function()
  local h = t.get('health')   -- not used
  error('a real problem')
end)
)");
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_NE(r.result.error.find("a real problem"), std::string::npos) << r.result.error;
}

TEST(Predict, UnknownValuesBehaveInLua) {
  auto r = run(R"(
step('restart', function() t.restart() end)
step('use', function()
  local h = t.get('x')
  assert(type(h) == 'userdata')
  assert(tostring(h.body):find('unknown: t.get x after t.restart', 1, true), tostring(h.body))
  assert(('status ' .. h.status):find('(unknown: ', 1, true))
  assert(#h == 0 and h[1] == nil)
  local n = 0
  for _ in ipairs(h) do n = n + 1 end
  assert(n == 0)
  local sum = h.count + 1
  assert(type(sum) == 'userdata')
  assert(json.encode({ v = h.body }) == '{"v":{"$unknown":"t.get x after t.restart"}}', json.encode({ v = h.body }))
  assert(not pcall(function() return h.count > 3 end))
  assert(h.ok)  -- an unknown is a value: truthy
end)
)");
  EXPECT_EQ(r.result.exit_code, kExitOk) << r.result.error;
  EXPECT_EQ(r.events.step_outcomes[1], "2:succeeded");
}

TEST(Predict, AChangeWhoseArgumentsAreUnknownIsPlannedAndListed) {
  auto r = run(R"(
step('restart', function() t.restart() end)
step('copy', function()
  local h = t.get('x')
  t.set{ key = 'y', value = h.body }
end)
)");
  EXPECT_EQ(r.result.exit_code, kExitOk) << r.result.error;
  ASSERT_EQ(r.effects.size(), 3u);
  EXPECT_EQ(r.effects[2].state, "planned");
  EXPECT_NE(r.run.extra["checked_live_only"].dump().find("\"arguments\""), std::string::npos);
}

TEST(Predict, APreviewThatFindsTheLiveCallWouldFailFailsTheDryRun) {
  auto r = run(R"(
step('s', function() t.set{ key = 'locked', value = 'x' } end)
step('never', function() t.set{ key = 'z', value = 'x' } end)
)");
  EXPECT_EQ(r.result.exit_code, kExitFailed);
  EXPECT_NE(r.result.error.find("the live run would fail here: key 'locked' is read-only"),
            std::string::npos)
      << r.result.error;
  EXPECT_EQ(r.effects.size(), 1u);
}

TEST(Predict, LiveRunsNeverPredict) {
  world()["colour"] = "red";
  auto r = run(R"(
step('s', function()
  t.restart()
  t.set{ key = 'colour', value = 'blue' }
  assert(t.get('colour').value == 'blue')
  assert(type(t.get('other')) == 'table')
end)
)",
               Mode::Live);
  EXPECT_EQ(r.result.exit_code, kExitOk) << r.result.error;
  for (const auto& e : r.effects) EXPECT_NE(e.state, "predicted");
  EXPECT_EQ(world()["colour"], "blue");
}

// A loop waiting for an unknown to change would spin until the step's deadline: the rehearsal
// stops the step after 20 unknowns from one call site, as checked live only, and goes on.
TEST(Predict, ALoopOnAnUnknownEndsTheStepAsCheckedLiveOnly) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run(R"(
step('restart', function() t.restart() end)
step{ 'wait for it', timeout = '60s', run = function()
  local n = 0
  for line in t.get('log').body:gmatch('[^\n]+') do n = n + 1 end
  assert(n == 0)
  while t.get('state').value ~= 'ready' do end
end }
step('after', function() t.set{ key = 'after', value = 'yes' } end)
)");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(r.result.exit_code, kExitOk) << r.result.error;
  ASSERT_EQ(r.events.step_outcomes.size(), 3u);
  EXPECT_EQ(r.events.step_outcomes[1], "2:live-only");
  EXPECT_EQ(r.events.step_outcomes[2], "3:succeeded");
  EXPECT_NE(r.run.extra["checked_live_only"].dump().find("the rehearsal stops the step here"),
            std::string::npos)
      << r.run.extra.dump();
}
