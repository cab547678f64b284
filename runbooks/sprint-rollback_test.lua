-- runbooks/sprint-rollback.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

local REPO = "/srv/repo"
local passing = { exec = { code = 0, ok = true, stdout = "10 passed\n", stderr = "" } }

local function with(over)
  local f = {}
  for k, v in pairs(passing) do f[k] = v end
  for k, v in pairs(over or {}) do f[k] = v end
  return f
end

t.case("L2: evidence, a backup branch, then a retry branch from baseline; nothing reset", function()
  local r = t.run("sprint-rollback.lua", { params = { repo = REPO, sprint = "7" }, fakes = passing })
  t.eq(r.outcome, "succeeded", r.error)
  t.called(r, "fs.write", { path = REPO .. "/rollbacks/sprint-7/report.md" })
  t.called(r, "fs.write", { path = REPO .. "/rollbacks/sprint-7/test_failures.txt" })
  local backup = t.called(r, "git.branch", { repo = REPO, ref = "HEAD" })
  t.ok(backup.args.name:find("^backup/sprint%-7%-%d+_%d+$"), backup.args.name)
  local to_base = t.called(r, "git.checkout", { repo = REPO, ref = "baseline" })
  t.ok(backup.seq < to_base.seq, "the backup branch exists before the checkout")
  t.called(r, "git.branch", { name = "refactor/sprint-7-retry", ref = "baseline" })
  t.called(r, "git.checkout", { ref = "refactor/sprint-7-retry" })
  t.not_called(r, "git.reset")
  t.not_called(r, "git.clean")
  t.called(r, "fs.write", { path = REPO .. "/rollbacks/metrics.json" })
end)

t.case("L2 with uncommitted work: a WIP commit before the backup branch", function()
  local r = t.run("sprint-rollback.lua", {
    params = { repo = REPO, sprint = "7" },
    fakes = with{ ["git.status"] = { clean = false, modified = { "app/x.py" }, untracked = {} } },
  })
  t.eq(r.outcome, "succeeded", r.error)
  local wip = t.called(r, "git.commit", { repo = REPO, all = true, message = "WIP: Sprint 7 before rollback" })
  t.ok(wip.seq < t.called(r, "git.branch", { ref = "HEAD" }).seq, "commit, then branch")
end)

t.case("L1: a backup branch before the hard reset, .env kept by the clean", function()
  local r = t.run("sprint-rollback.lua", { params = { repo = REPO, level = "L1" }, fakes = passing })
  t.eq(r.outcome, "succeeded", r.error)
  local backup = t.called(r, "git.branch", { repo = REPO, ref = "HEAD" })
  t.ok(backup.args.name:find("^backup/l1%-"), backup.args.name)
  local reset = t.called(r, "git.reset", { repo = REPO, ref = "origin/baseline", hard = true })
  t.ok(backup.seq < reset.seq, "backup branch before the reset")
  t.called(r, "git.clean", { repo = REPO, exclude = { ".env" }, ignored = false })
  t.called(r, "service.stop", { name = "sprint-backend" })
  t.called(r, "service.start", { name = "sprint-backend" })
  t.called(r, "http.wait_healthy", { url = "http://127.0.0.1:8000/health" })
end)

t.case("L1: no reset when the backup branch cannot be made", function()
  local r = t.run("sprint-rollback.lua", {
    params = { repo = REPO, level = "L1" },
    fakes = with{ ["git.branch"] = t.fail("cannot lock ref") },
  })
  t.eq(r.outcome, "failed")
  t.not_called(r, "git.reset")
  t.not_called(r, "git.clean")
end)

t.case("L3: a file baseline does not have stops before any checkout", function()
  local r = t.run("sprint-rollback.lua", {
    params = { repo = REPO, level = "L3", files = { "backend/app/new.py" } },
    fakes = with{ ["git.rev_parse"] = function(a)
      if a.ref:find(":", 1, true) then return t.fail("path not in baseline") end
      return ("b"):rep(40)
    end },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("backend/app/new.py does not exist in baseline", 1, true), r.error)
  t.not_called(r, "git.checkout")
end)

t.case("L3: files restored from baseline, their failing tests fail the run", function()
  local r = t.run("sprint-rollback.lua", {
    params = { repo = REPO, level = "L3", files = { "backend/app/users.py" } },
    fakes = { exec = { code = 1, ok = false, stdout = "FAILED tests/unit/test_users.py::test_a\n", stderr = "" } },
  })
  t.eq(r.outcome, "failed")
  t.called(r, "git.checkout", { ref = "baseline", paths = { "backend/app/users.py" } })
  t.ok(r.error:find("1 related tests fail after the rollback", 1, true), r.error)
end)

t.case("recover: a conflict stops the cherry-picks at that commit", function()
  local r = t.run("sprint-rollback.lua", {
    params = { repo = REPO, level = "recover", commits = { "c1", "c2" } },
    fakes = with{ ["git.cherry_pick"] = function(a)
      if a.commit == "c1" then return t.fail("conflict in app/x.py") end
      return { commit = "new" }
    end },
  })
  t.eq(r.outcome, "failed")
  t.called(r, "git.branch", { ref = "baseline" })
  t.called(r, "git.cherry_pick", { commit = "c1" })
  t.not_called(r, "git.cherry_pick", { commit = "c2" })
end)

t.case("analyze changes nothing in the repository", function()
  local r = t.run("sprint-rollback.lua", { params = { repo = REPO, level = "analyze" }, fakes = passing })
  t.eq(r.outcome, "succeeded", r.error)
  for _, name in ipairs{ "git.checkout", "git.branch", "git.reset", "git.clean", "git.stash", "git.commit" } do
    t.not_called(r, name)
  end
  t.called(r, "http.sample", { url = "http://127.0.0.1:8000/health" })
end)

t.case("L2: a crash at any change resumes to the same branches", function()
  local m = t.crash_matrix("sprint-rollback.lua", {
    params = { repo = REPO, sprint = "7" },
    fakes = with{ ["time.now"] = function() return 1733300000 end },
  })
  t.eq(m.outcome, "succeeded")
end)
