-- runbooks/emergency.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

-- The deployed release (bad1) and the last good one (good1), as git would answer.
local function fakes(over)
  local head = { commit = "bad1", short = "bad1", tag = "v1.1.0", ref = "refs/heads/main" }
  local f = {
    ["git.head"] = t.sequence{ head, { commit = "good1", short = "good1", tag = "v1.0.0" } },
    ["git.rev_parse"] = function() return "good1" end,
    ["service.status"] = { name = "demo-app", state = "running", pid = 4242 },
    ["http.get"] = { status = 200, json = { version = "1.0.0" }, body = "" },
    ["http.wait_healthy"] = { status = 200, attempts = 3, waited = 1500 },
  }
  for k, v in pairs(over or {}) do f[k] = v end
  return f
end

local function seq_of(r, name)
  local e = t.called(r, name)
  return e.seq
end

t.case("tags, stops, backs up, checks out last-good, starts healthy", function()
  local r = t.run("emergency.lua", { fakes = fakes() })
  t.eq(r.outcome, "succeeded", r.error)
  t.eq(r.exit_code, 0)
  t.called(r, "git.tag", { repo = "/tmp/runbook-demo/app", ref = "HEAD" })
  t.called(r, "service.stop", { name = "demo-app" })
  t.called(r, "fs.backup", { path = "/tmp/runbook-demo/config", dir = "/tmp/runbook-demo/backups" })
  t.called(r, "sqlite.backup", { db = "/tmp/runbook-demo/data/app.db", to = "/tmp/runbook-demo/backups" })
  -- Local edits are stashed, never reset away.
  t.called(r, "git.checkout", { repo = "/tmp/runbook-demo/app", ref = "last-good", stash = true })
  t.not_called(r, "git.reset")
  t.called(r, "service.start", { name = "demo-app" })
  -- The order an SRE relies on: the tag and the backups exist before the code moves.
  t.ok(seq_of(r, "git.tag") < seq_of(r, "git.checkout"), "tag before checkout")
  t.ok(seq_of(r, "service.stop") < seq_of(r, "fs.backup"), "stop before the backup of live data")
  t.ok(seq_of(r, "sqlite.backup") < seq_of(r, "git.checkout"), "backup before checkout")
  t.ok(seq_of(r, "git.checkout") < seq_of(r, "service.start"), "checkout before start")
end)

t.case("a failed backup stops the rollback before the code moves", function()
  local r = t.run("emergency.lua", { fakes = fakes{ ["sqlite.backup"] = t.fail("database is locked") } })
  t.eq(r.outcome, "failed")
  t.eq(r.exit_code, 1)
  t.not_called(r, "git.checkout")
  t.not_called(r, "service.start")
  -- The summary still runs and says the app is not recovered.
  local said = false
  for _, l in ipairs(r.logs) do
    if l.message:find("NOT RECOVERED", 1, true) then said = true end
  end
  t.ok(said, "the summary says NOT RECOVERED")
end)

t.case("an app that never gets healthy fails the run", function()
  local r = t.run("emergency.lua", { fakes = fakes{ ["http.wait_healthy"] = t.fail("not healthy after 60s: 503") } })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("not healthy", 1, true), r.error)
  t.called(r, "git.checkout")
  -- Verification never ran: nothing claims success.
  t.eq(r.steps[#r.steps].name, "Summary")
end)

t.case("the verification catches a checkout that did not take", function()
  local r = t.run("emergency.lua", {
    fakes = fakes{ ["git.head"] = { commit = "bad1", short = "bad1", tag = "v1.1.0" } },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("HEAD is bad1, not last-good", 1, true), r.error)
end)

t.case("a crash at any change resumes without doing a change twice", function()
  local m = t.crash_matrix("emergency.lua", {
    fakes = {
      ["git.head"] = { commit = "good1", short = "good1" },
      ["git.rev_parse"] = function() return "good1" end,
      ["http.wait_healthy"] = { status = 200, attempts = 1, waited = 10 },
      -- A fixed clock: the tag's name holds the time, and every run of the matrix must agree.
      ["time.now"] = function() return 1733300000 end,
    },
  })
  t.eq(m.outcome, "succeeded")
  t.ok(m.boundaries >= 5, "boundaries: " .. m.boundaries)
end)
