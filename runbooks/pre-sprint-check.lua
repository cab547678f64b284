-- Source: 004 "Rollback Procedures and Emergency Recovery" — Preventing Future Rollbacks:
-- Pre-Sprint Safety Checks (baseline integrity, clean tree, dependencies, disk < 90 %,
-- checkpoint tag) and Incremental Validation (tests for the files changed since baseline).
local C = require "lib.common"

runbook {
  name = "pre-sprint-check",
  version = "1.0.0",
  summary = "Before a sprint: clean tree, baseline tests pass, dependencies consistent, disk below 90 %, checkpoint tag",
  params = {
    repo = { type = "path", default = ".", doc = "the repository" },
    baseline = { type = "string", default = "baseline", doc = "the known good branch" },
    test_cmd = { type = "list", default = "pytest", doc = "the test command, argv ('' to skip the tests)" },
    venv = { type = "path", doc = "virtualenv to `pip check` (optional)" },
    frontend_dir = { type = "string", default = "frontend", doc = "relative to repo; its lockfile must be installed ('' for none)" },
    max_disk_percent = { type = "int", default = 90 },
    tag_prefix = { type = "string", default = "checkpoint-" },
    incremental = { type = "bool", default = false, doc = "also run the tests of files changed since baseline (backend/app/x.py -> backend/tests/unit/x_test.py)" },
  },
}

local state = {}

step("No uncommitted changes", function(p)
  local st = git.status{ repo = p.repo }
  if not st.clean then
    local files = {}
    for _, f in ipairs(st.modified or {}) do files[#files + 1] = f end
    for _, f in ipairs(st.untracked or {}) do files[#files + 1] = f .. " (untracked)" end
    error("uncommitted changes: " .. table.concat(files, ", "), 0)
  end
end)

step("Disk space", function(p)
  local df = fs.disk_free(p.repo)
  log.info(string.format("disk %.0f%% used", df.used_percent))
  if df.used_percent > p.max_disk_percent then
    error(string.format("low disk space: %.0f%% used (limit %d%%)", df.used_percent, p.max_disk_percent), 0)
  end
end)

-- The source checked out baseline to test it, which moves the working tree; here the tests run
-- where the tree is, and it must be at baseline (or the difference is shown).
step{ "Baseline integrity", timeout = "20m", run = function(p)
  local head = git.head{ repo = p.repo }
  local base = git.rev_parse{ repo = p.repo, ref = p.baseline }
  state.at_baseline = head.commit == base
  if not state.at_baseline then
    local files = git.diff_names{ repo = p.repo, from = p.baseline, to = "HEAD" }
    log.info("HEAD is not " .. p.baseline .. " (" .. #files .. " files differ)")
  end
  if C.empty(p.test_cmd) then return log.warn("no test command: baseline tests not run") end
  local argv = { table.unpack(p.test_cmd) }
  -- A test suite writes (caches, reports): a change, run live only, never in a dry-run.
  argv.cwd, argv.timeout = p.repo, "20m"
  local r = exec(argv)
  local out = (r.stdout or "") .. (r.stderr or "")
  state.passed = out:match("(%d+) passed") or "?"
  log.info("tests passing: " .. state.passed)
end }

step{ "Dependencies up to date", timeout = "10m", run = function(p)
  if not C.empty(p.venv) then
    local chk = pip.check{ venv = p.venv }
    if chk.ok == false then error("pip check: " .. table.concat(chk.problems or {}, "; "), 0) end
    log.info("python dependencies consistent")
  end
  if p.frontend_dir ~= "" then
    local dir = p.repo .. "/" .. p.frontend_dir
    if fs.exists(dir .. "/package-lock.json") and not fs.exists(dir .. "/node_modules") then
      error(dir .. ": node_modules missing; run npm ci before the sprint", 0)
    end
  end
end }

step{ "Incremental validation", timeout = "20m", run = function(p)
  if not p.incremental or C.empty(p.test_cmd) then return end
  local tests = {}
  for _, f in ipairs(git.diff_names{ repo = p.repo, from = p.baseline, to = "HEAD" }) do
    if f:match("%.py$") and f:find("backend/app/", 1, true) then
      local t = f:gsub("backend/app/", "backend/tests/unit/"):gsub("%.py$", "_test.py")
      if fs.exists(p.repo .. "/" .. t) then tests[#tests + 1] = t end
    end
  end
  if #tests == 0 then return log.info("no test files found for changed code") end
  local argv = { table.unpack(p.test_cmd) }
  for _, t in ipairs(tests) do argv[#argv + 1] = t end
  -- A test suite writes (caches, reports): a change, run live only, never in a dry-run.
  argv.cwd, argv.timeout = p.repo, "20m"
  exec(argv)
  log.info(#tests .. " affected test files pass")
end }

step("Create the safety checkpoint", function(p)
  state.tag = p.tag_prefix .. C.stamp():gsub("-", "_")
  git.tag{ repo = p.repo, name = state.tag, ref = "HEAD", message = "Pre-sprint checkpoint" }
  log.info("all safety checks passed; checkpoint " .. state.tag .. "; baseline tests passing: " .. tostring(state.passed))
end)
