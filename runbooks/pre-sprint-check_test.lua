-- runbooks/pre-sprint-check.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

local params = { repo = "/srv/repo" }
local passing = { exec = { code = 0, ok = true, stdout = "==== 42 passed in 3.1s ====\n", stderr = "" } }

local function with(over)
  local f = {}
  for k, v in pairs(passing) do f[k] = v end
  for k, v in pairs(over) do f[k] = v end
  return f
end

t.case("a clean tree with passing tests gets its checkpoint tag", function()
  local r = t.run("pre-sprint-check.lua", { params = params, fakes = passing })
  t.eq(r.outcome, "succeeded", r.error)
  t.called(r, "exec", { argv = { "pytest" }, cwd = "/srv/repo", readonly = false })
  local tag = t.called(r, "git.tag", { repo = "/srv/repo", ref = "HEAD", message = "Pre-sprint checkpoint" })
  t.ok(tag.args.name:find("^checkpoint%-%d+_%d+$"), tag.args.name)
  t.eq(r.logs[#r.logs].message:match("baseline tests passing: (%d+)"), "42")
end)

t.case("uncommitted changes stop the checks before any test or tag", function()
  local r = t.run("pre-sprint-check.lua", {
    params = params,
    fakes = with{ ["git.status"] = { clean = false, modified = { "app/main.py" }, untracked = { "notes.txt" } } },
  })
  t.eq(r.outcome, "failed")
  t.eq(r.error:match("uncommitted changes: .*$"), "uncommitted changes: app/main.py, notes.txt (untracked)")
  t.not_called(r, "exec")
  t.not_called(r, "git.tag")
end)

t.case("failing baseline tests get no checkpoint", function()
  local r = t.run("pre-sprint-check.lua", { params = params, fakes = { exec = t.fail("'pytest' exited 1") } })
  t.eq(r.outcome, "failed")
  t.not_called(r, "git.tag")
end)

t.case("a disk above 90 % gets no checkpoint", function()
  local r = t.run("pre-sprint-check.lua", {
    params = params, fakes = with{ ["fs.disk_free"] = { total = 10, free = 0, avail = 0, used_percent = 93 } },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("low disk space: 93% used", 1, true), r.error)
  t.not_called(r, "git.tag")
end)

t.case("a lockfile without node_modules gets no checkpoint", function()
  local r = t.run("pre-sprint-check.lua", {
    params = params,
    fakes = with{ ["fs.exists"] = function(a) return not a.path:find("node_modules", 1, true) end },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("node_modules missing", 1, true), r.error)
  t.not_called(r, "git.tag")
end)

t.case("incremental validation runs the tests of the changed files", function()
  local r = t.run("pre-sprint-check.lua", {
    params = { repo = "/srv/repo", incremental = true },
    fakes = with{ ["git.diff_names"] = { "backend/app/users.py", "README.md" } },
  })
  t.eq(r.outcome, "succeeded", r.error)
  t.called(r, "exec", { argv = { "pytest", "backend/tests/unit/users_test.py" } })
end)
