-- runbooks/system-rollback.lua under test: every effect faked, nothing touches the world.
local t = require "runbook.test"

local REPO = "/srv/app"
local on_main = { ["git.head"] = { commit = ("a"):rep(40), short = "aaaaaaa", ref = "refs/heads/main", branch = "main" } }

local function with(over)
  local f = {}
  for k, v in pairs(on_main) do f[k] = v end
  for k, v in pairs(over or {}) do f[k] = v end
  return f
end

t.case("revert: an emergency tag first, then one revert commit per commit, newest first", function()
  local r = t.run("system-rollback.lua", { params = { repo = REPO, commits = { "c3", "c2" } }, fakes = on_main })
  t.eq(r.outcome, "succeeded", r.error)
  local tag = t.called(r, "git.tag", { repo = REPO, ref = "HEAD" })
  t.ok(tag.args.name:find("^emergency%-backup%-"), tag.args.name)
  local c3 = t.called(r, "git.revert", { commit = "c3" })
  local c2 = t.called(r, "git.revert", { commit = "c2" })
  t.ok(tag.seq < c3.seq and c3.seq < c2.seq, "tag, then c3, then c2")
  t.not_called(r, "git.reset")
  t.not_called(r, "git.push")            -- push = false: nothing leaves the machine
  t.not_called(r, "git.checkout")        -- already on main
  t.called(r, "http.wait_healthy", { url = "http://127.0.0.1:8000/health" })
end)

t.case("reset: a backup branch before the hard reset, pushes only with lease", function()
  local r = t.run("system-rollback.lua", {
    params = { repo = REPO, mode = "reset", good_ref = "v1.0.0", push = true },
    fakes = on_main,
  })
  t.eq(r.outcome, "succeeded", r.error)
  local branch = t.called(r, "git.branch", { repo = REPO, ref = "HEAD" })
  local reset = t.called(r, "git.reset", { repo = REPO, ref = "v1.0.0", hard = true })
  t.ok(branch.seq < reset.seq, "backup branch before the reset")
  local forced = t.called(r, "git.push", { refspec = "refs/heads/main", force = true })
  t.ok(forced.seq > reset.seq)
  t.called(r, "git.push", { refspec = "refs/heads/" .. branch.args.name })
end)

t.case("no reset when the backup branch cannot be made", function()
  local r = t.run("system-rollback.lua", {
    params = { repo = REPO, mode = "reset", good_ref = "v1.0.0" },
    fakes = with{ ["git.branch"] = t.fail("cannot lock ref") },
  })
  t.eq(r.outcome, "failed")
  t.not_called(r, "git.reset")
end)

t.case("reset without good_ref is refused before anything changes", function()
  local r = t.run("system-rollback.lua", { params = { repo = REPO, mode = "reset" }, fakes = on_main })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("needs good_ref", 1, true), r.error)
  t.not_called(r, "git.tag")
end)

t.case("system: services stopped in reverse order, code reset, env restored, services started", function()
  local r = t.run("system-rollback.lua", {
    params = { repo = REPO, mode = "system", good_ref = "v1.0.0" },
    fakes = on_main,
  })
  t.eq(r.outcome, "succeeded", r.error)
  local stop_fe = t.called(r, "service.stop", { name = "frontend-v2" })
  local stop_be = t.called(r, "service.stop", { name = "backend-v2" })
  t.ok(stop_fe.seq < stop_be.seq, "frontend stopped first")
  local reset = t.called(r, "git.reset", { hard = true, ref = "v1.0.0" })
  t.ok(stop_be.seq < reset.seq)
  t.called(r, "fs.restore", { backup = REPO .. "/.env.backup", path = REPO .. "/.env" })
  local start = t.called(r, "service.start", { name = "backend-v2" })
  t.ok(reset.seq < start.seq)
end)

t.case("image: an image that cannot be pulled fails while the service still runs", function()
  local r = t.run("system-rollback.lua", {
    params = { repo = REPO, mode = "image", image = "ghcr.io/org/backend-v2", image_tag = "1.4.2" },
    fakes = { exec = function(a)
      local argv = a.argv
      if argv[2] == "pull" then return t.fail("'docker' exited 1: manifest unknown") end
      return { code = 1, ok = false, stdout = "", stderr = "No such image" }
    end },
  })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("manifest unknown", 1, true), r.error)
  t.not_called(r, "service.stop")
  t.not_called(r, "compose.set_image")
end)

t.case("image: only the image line changes, then the service restarts on it", function()
  local r = t.run("system-rollback.lua", {
    params = { repo = REPO, mode = "image", image = "ghcr.io/org/backend-v2", image_tag = "1.4.2" },
    fakes = { exec = { code = 0, ok = true, stdout = "sha256:abc\n", stderr = "" } },
  })
  t.eq(r.outcome, "succeeded", r.error)
  t.called(r, "compose.set_image", { file = REPO .. "/docker-compose.yml", image = "ghcr.io/org/backend-v2", tag = "1.4.2" })
  t.called(r, "service.stop", { name = "backend-v2" })
  t.called(r, "service.start", { name = "backend-v2" })
  t.not_called(r, "git.tag")
end)

t.case("an unhealthy app after the rollback fails the run; the incident report is still written", function()
  local r = t.run("system-rollback.lua", {
    params = { repo = REPO, commits = { "c3" } },
    fakes = with{ ["http.wait_healthy"] = t.fail("not healthy after 120s: 502") },
  })
  t.eq(r.outcome, "failed")
  t.eq(r.steps[#r.steps].name, "Incident report")
  t.eq(r.steps[#r.steps].outcome, "succeeded")
end)

t.case("an unknown service is refused, naming the known ones", function()
  local r = t.run("system-rollback.lua", { params = { repo = REPO, mode = "services", services = { "billing" } }, fakes = on_main })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("unknown service 'billing' (auth, booking, frontend, integrations, notifications, payments)", 1, true), r.error)
  t.not_called(r, "git.tag")
end)

t.case("reset: a crash at any change resumes without a second reset", function()
  local m = t.crash_matrix("system-rollback.lua", {
    params = { repo = REPO, mode = "reset", good_ref = "v1.0.0" },
    fakes = with{ ["time.now"] = function() return 1733300000 end },
  })
  t.eq(m.outcome, "succeeded")
end)
