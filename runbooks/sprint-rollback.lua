-- Source: 004 "Rollback Procedures and Emergency Recovery" — Rollback Decision Matrix,
-- Level 1 Immediate Full Rollback, Level 2 Sprint Rollback, Level 3 Selective File Rollback,
-- Analyzing What Went Wrong, Recovering Lost Work (cherry-pick), Rollback Communication,
-- Rollback Metrics, Post-Rollback Checklist.
local C = require "lib.common"

runbook {
  name = "sprint-rollback",
  version = "1.1.0",
  summary = "Recover from a failed refactoring sprint: full reset to baseline, sprint rollback, selective files, or cherry-pick recovery",
  params = C.with_notify{
    level = { type = "string", default = "L2", choices = { "L1", "L2", "L3", "recover", "analyze" },
              doc = "L1 critical: full rollback to baseline (<5 min); L2 high: sprint rollback with evidence, backup and retry branches (<15 min); L3 medium: selective files from baseline (<30 min); recover: cherry-pick chosen commits; analyze: failure report only" },
    repo = { type = "path", default = ".", doc = "the repository" },
    baseline = { type = "string", default = "baseline", doc = "the known good branch" },
    reset_to = { type = "string", default = "", doc = "L1: what baseline is reset to (default origin/<baseline> when it exists, else <baseline>)" },
    sprint = { type = "string", default = "", doc = "sprint number (L2, metrics)" },
    files = { type = "list", default = "", doc = "files to roll back (L3)" },
    commits = { type = "list", default = "", doc = "commits to recover, oldest first (recover)" },
    failed_branch = { type = "string", default = "", doc = "the branch the commits come from (recover; for the listing)" },
    coverage_cmd = { type = "list", default = "", doc = "analyze: the test suite with coverage, argv (e.g. venv/bin/python,-m,pytest,--cov); its total against baseline_coverage (live only)" },
    baseline_coverage = { type = "number", default = 0, doc = "analyze: the coverage percentage before the sprint" },
    baseline_p95_ms = { type = "int", default = 0, doc = "analyze: the backend's normal P95, for the performance comparison" },
    test_cmd = { type = "list", default = "pytest", doc = "the test command, argv" },
    backend_dir = { type = "string", default = "backend", doc = "relative to repo" },
    frontend_dir = { type = "string", default = "frontend", doc = "relative to repo ('' when there is none)" },
    venv = { type = "path", doc = "virtualenv for the reinstall (default <repo>/<backend_dir>/venv)" },
    find_links = { type = "path", doc = "a directory of wheels for the L1 reinstall (offline installs)" },
    no_index = { type = "bool", default = false, doc = "the L1 reinstall does not reach the package index" },
    backend_cmd = { type = "list", default = "uvicorn,app.main:app", doc = "argv of the backend (process backend, run in backend_dir)" },
    backend_url = { type = "url", default = "http://127.0.0.1:8000/health" },
    frontend_url = { type = "url", default = "http://127.0.0.1:3000" },
    restart = { type = "bool", default = true, doc = "L1: stop and restart the dev services" },
    keep = { type = "list", default = ".env",
             doc = "L1: paths the clean keeps in place, like git clean -e (the .env with its secrets, local data)" },
    clean_ignored = { type = "bool", default = false,
                      doc = "L1: clean ignored files too (the source's clean -fdx): local data, venv and node_modules go to the run's artifacts and are rebuilt; `keep` stays" },
    evidence_dir = { type = "path", doc = "where reports go (default <repo>/rollbacks)" },
    severity = { type = "string", default = "High", choices = { "Critical", "High", "Medium", "Low" } },
    cause = { type = "string", default = "unknown", doc = "for the rollback metrics" },
    healthy_within = { type = "duration", default = "120s" },
  },
}

local state = { done = {} }

local function evidence_root(p) return C.under(p.evidence_dir, p.repo, "rollbacks") end
local function venv(p) return C.under(p.venv, p.repo .. "/" .. p.backend_dir, "venv") end

local function services(p)
  if state.services then return state.services end
  fs.mkdir(p.repo .. "/logs")
  local argv = { table.unpack(p.backend_cmd) }
  if not argv[1]:find("/") and fs.exists(venv(p) .. "/bin/" .. argv[1]) then argv[1] = venv(p) .. "/bin/" .. argv[1] end
  local names = { C.service("process", "sprint-backend", {
    argv = argv, cwd = p.repo .. "/" .. p.backend_dir, health = p.backend_url, log = p.repo .. "/logs/backend.log",
    -- Started by hand (004: `uvicorn app.main:app --reload &`) it has no pidfile: adopted by its port.
    port = C.url_port(p.backend_url) }) }
  if p.frontend_dir ~= "" then
    names[#names + 1] = C.service("process", "sprint-frontend", {
      argv = { "npm", "run", "dev" }, cwd = p.repo .. "/" .. p.frontend_dir, health = p.frontend_url,
      log = p.repo .. "/logs/frontend.log", port = C.url_port(p.frontend_url) })
  end
  state.services = names
  return names
end

-- Runs the tests: the output is evidence, a failure is a result. A test suite writes (caches,
-- reports, test databases), so it is a change: it runs live only, never in a dry-run.
local function run_tests(p, extra)
  local argv = { table.unpack(p.test_cmd) }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  argv.cwd, argv.check, argv.timeout = p.repo, false, "15m"
  local r = exec(argv)
  local out = (r.stdout or "") .. (r.stderr or "")
  local failed = select(2, out:gsub("FAILED", ""))
  return r, out, failed
end

step("Assess", function(p)
  state.started = time.now()
  if p.level == "L3" and C.empty(p.files) then error("L3 needs files", 0) end
  if p.level == "recover" and C.empty(p.commits) then error("recover needs commits (chosen up front, not typed at a prompt)", 0) end
  if p.level == "L2" and C.empty(p.sprint) then error("L2 needs sprint", 0) end
  local head = git.head{ repo = p.repo }
  state.head, state.branch = head.commit, head.ref and head.ref:gsub("^refs/heads/", "") or "(detached)"
  state.baseline = git.rev_parse{ repo = p.repo, ref = p.baseline }
  log.info("on " .. state.branch .. " at " .. tostring(head.short or head.commit) .. "; baseline " .. tostring(state.baseline))
  local st = git.status{ repo = p.repo }
  state.dirty = not st.clean
  if state.dirty then
    log.info(#(st.modified or {}) .. " modified, " .. #(st.untracked or {}) .. " untracked files")
  end
  if p.level ~= "analyze" then C.notice(p, "start", { issue = p.issue ~= "" and p.issue or p.cause, impact = p.impact, severity = p.severity, status = "level " .. p.level }) end
end)

-- L2 / analyze: the evidence a post-mortem needs, collected before anything moves.
step{ "Collect failure evidence", timeout = "20m", run = function(p)
  if p.level ~= "L2" and p.level ~= "analyze" then return end
  local dir = evidence_root(p) .. "/" .. (p.level == "L2" and ("sprint-" .. p.sprint) or ("analysis-" .. C.stamp()))
  state.evidence = dir
  fs.mkdir(dir)
  local lines = {}
  for _, c in ipairs(git.log{ repo = p.repo, ref = "HEAD", max = 200 }) do
    lines[#lines + 1] = tostring(c.commit):sub(1, 10) .. " " .. tostring(c.summary)
  end
  fs.write(dir .. "/git_log.txt", table.concat(lines, "\n") .. "\n")
  if p.level == "analyze" then
    -- Analysis 1: where HEAD has been (a reset or a rebase shows here, not in the log) and the
    -- last 20 commits as a graph. Read-only git commands: they run in a rehearsal too.
    local reflog = exec{ "git", "reflog", "-n", "50", cwd = p.repo, readonly = true, check = false, timeout = "1m" }
    fs.write(dir .. "/git_reflog.txt", (reflog.stdout or "") .. (reflog.code ~= 0 and (reflog.stderr or "") or ""))
    local graph = exec{ "git", "log", "--graph", "--oneline", "--decorate", "-20", cwd = p.repo, readonly = true,
                        check = false, timeout = "1m" }
    fs.write(dir .. "/git_graph.txt", graph.stdout or "")
  end
  local changed = git.diff_names{ repo = p.repo, from = p.baseline, to = "HEAD" }
  fs.write(dir .. "/changes.txt", table.concat(changed, "\n") .. "\n")
  local r, out, failed = run_tests(p)
  fs.write(dir .. "/test_failures.txt", out)
  if p.level == "analyze" then
    if fs.exists(venv(p) .. "/bin/python") then pip.freeze{ venv = venv(p), to = dir .. "/pip_freeze.txt" } end
    if p.frontend_dir ~= "" and fs.exists(p.repo .. "/" .. p.frontend_dir .. "/package.json") then
      fs.write(dir .. "/npm_list.json", json.encode(npm.versions{ dir = p.repo .. "/" .. p.frontend_dir }, true) .. "\n")
    end
    if not C.empty(p.coverage_cmd) then
      -- Analysis 3, coverage delta: the suite's total (the last "NN%" it prints, as coverage.py's
      -- and jest's summaries end) against the baseline's. It writes .coverage files: live only.
      if run.dry_run then
        log.info("coverage: not run in a dry-run (it writes its data files)")
      else
        local a = { table.unpack(p.coverage_cmd) }
        a.cwd, a.check, a.timeout = p.repo, false, "20m"
        local cov = exec(a)
        local total
        for pctv in ((cov.stdout or "") .. "\n" .. (cov.stderr or "")):gmatch("(%d+%.?%d*)%%") do total = tonumber(pctv) end
        local line = total and string.format("coverage %g %% (baseline %g %%, delta %+.1f)", total,
                                             p.baseline_coverage, total - p.baseline_coverage)
                     or ("coverage: no percentage in the output of " .. table.concat(p.coverage_cmd, " "))
        log.info(line)
        fs.write(dir .. "/coverage.txt", line .. "\n")
      end
    end
    if not C.empty(p.backend_url) then
      -- Analysis 4, performance against the baseline: 20 requests to the backend.
      local perf = http.sample{ url = p.backend_url, n = 20, concurrency = 4, timeout = "10s" }
      local line = string.format("P95 %s ms, p50 %s ms, %d errors over %d requests to %s", tostring(perf.p95_ms),
                                 tostring(perf.p50_ms), perf.errors or 0, perf.n or 20, p.backend_url)
      if p.baseline_p95_ms > 0 and type(perf.p95_ms) == "number" then
        line = line .. string.format("; baseline %d ms: %+.0f %%", p.baseline_p95_ms, 100 * (perf.p95_ms - p.baseline_p95_ms) / p.baseline_p95_ms)
      end
      log.info("performance: " .. line)
      fs.write(dir .. "/performance.txt", line .. "\n")
    end
    local df = fs.disk_free(p.repo)
    fs.write(dir .. "/system.txt", string.format("disk %.0f%% used\n%s", df.used_percent, fs.read("/proc/meminfo")))
  end
  local summary = {}
  for l in out:gmatch("[^\n]+") do
    if l:find("FAILED", 1, true) or l:find("ERROR", 1, true) or l:find("passed", 1, true) then summary[#summary + 1] = l end
  end
  while #summary > 20 do table.remove(summary, 1) end
  local base = git.log{ repo = p.repo, ref = p.baseline, max = 1 }[1] or {}
  local title = p.level == "L2" and ("# Sprint " .. p.sprint .. " Rollback Report") or "# Failure Analysis Report"
  fs.write(dir .. "/report.md", table.concat({
    title, "Date: " .. C.iso(), "Branch: " .. state.branch,
    "Last good commit (" .. p.baseline .. "): " .. tostring(base.commit):sub(1, 10) .. " " .. tostring(base.summary),
    "Reason: " .. p.cause, "",
    "## Symptoms",
    "- Tests failing: " .. failed .. " (exit " .. tostring(r.code) .. ")", "",
    "## Files Changed", #changed .. " files modified since " .. p.baseline, "",
    "## Test Summary", "```", table.concat(summary, "\n"), "```", "",
    "## Rollback Decision", "[EXPLAIN WHY ROLLBACK WAS NECESSARY]", "",
  }, "\n"))
  log.info("evidence in " .. dir .. ": " .. failed .. " failing tests, " .. #changed .. " files changed")
end }

step{ "Stop the services", timeout = "2m", run = function(p)
  if p.level == "L1" and p.restart then C.stop_all(services(p)) end
end }

step{ "Save the current work", run = function(p)
  if p.level == "analyze" then return end
  if p.level == "L2" then
    -- The WIP commit and a backup branch: the failed sprint stays one `git checkout` away.
    if state.dirty then
      git.commit{ repo = p.repo, message = "WIP: Sprint " .. p.sprint .. " before rollback", all = true }
      state.done[#state.done + 1] = "WIP commit"
    end
    state.backup = "backup/sprint-" .. p.sprint .. "-" .. C.stamp():gsub("-", "_")
    git.branch{ repo = p.repo, name = state.backup, ref = "HEAD" }
    state.done[#state.done + 1] = "backup branch " .. state.backup
  elseif state.dirty then
    local why = p.level == "L1" and "EMERGENCY: state before rollback " .. C.stamp()
      or p.level == "L3" and "Backup before selective rollback: " .. table.concat(p.files, " ")
      or "Backup before recovering " .. table.concat(p.commits, " ")
    git.stash{ repo = p.repo, message = why, untracked = true }
    state.done[#state.done + 1] = "stashed: " .. why
  end
  if p.level == "L1" then
    state.backup = "backup/l1-" .. C.stamp():gsub("-", "_")
    git.branch{ repo = p.repo, name = state.backup, ref = "HEAD" }
    state.done[#state.done + 1] = "backup branch " .. state.backup
  end
end }

step{ "Roll back", timeout = "10m", run = function(p)
  if p.level == "L1" then
    git.checkout{ repo = p.repo, ref = p.baseline }
    local to = p.reset_to
    if to == "" then
      local ok = pcall(git.rev_parse, { repo = p.repo, ref = "origin/" .. p.baseline })
      to = ok and ("origin/" .. p.baseline) or p.baseline
    end
    -- reset and clean keep a backup ref and move what they remove into the run's artifacts.
    git.reset{ repo = p.repo, ref = to, hard = true }
    git.clean{ repo = p.repo, ignored = p.clean_ignored, exclude = p.keep }
    -- Python caches by name (the source's `find -name __pycache__ -exec rm -rf`), outside the
    -- venv and node_modules; moved to the artifacts like everything else removed here.
    local found = exec{ "find", p.repo, "(", "-name", "venv", "-o", "-name", "node_modules", "-o", "-name", ".git", ")",
                        "-prune", "-o", "-type", "d", "-name", "__pycache__", "-print",
                        readonly = true, timeout = "2m" }
    local caches = 0
    for dir in (found.stdout or ""):gmatch("[^\n]+") do
      if fs.exists(dir) then fs.remove(dir); caches = caches + 1 end
    end
    state.done[#state.done + 1] = "reset to " .. to .. ", cleaned" .. (p.clean_ignored and " (ignored files too)" or "") ..
      ", " .. caches .. " __pycache__ removed"
  elseif p.level == "L2" then
    git.checkout{ repo = p.repo, ref = p.baseline }
    local retry = "refactor/sprint-" .. p.sprint .. "-retry"
    git.branch{ repo = p.repo, name = retry, ref = p.baseline }
    git.checkout{ repo = p.repo, ref = retry }
    state.done[#state.done + 1] = "new branch " .. retry .. " from " .. p.baseline
  elseif p.level == "L3" then
    local differ = git.diff_names{ repo = p.repo, from = p.baseline, to = "HEAD" }
    local in_baseline = {}
    for _, f in ipairs(p.files) do
      local found = try(function() return git.rev_parse{ repo = p.repo, ref = p.baseline .. ":" .. f } end)
      if not found then error(f .. " does not exist in " .. p.baseline, 0) end
      in_baseline[#in_baseline + 1] = f
      if not C.contains(differ, f) then log.info(f .. " is already as in " .. p.baseline) end
    end
    git.checkout{ repo = p.repo, ref = p.baseline, paths = in_baseline }
    state.done[#state.done + 1] = "restored from " .. p.baseline .. ": " .. table.concat(in_baseline, ", ")
  elseif p.level == "recover" then
    if p.failed_branch ~= "" then
      log.info("commits on " .. p.failed_branch .. " since " .. p.baseline .. ":")
      for _, c in ipairs(git.log{ repo = p.repo, ref = p.baseline .. ".." .. p.failed_branch, max = 50 }) do
        log.info("  " .. tostring(c.commit):sub(1, 10) .. " " .. tostring(c.summary))
      end
    end
    -- The recovery branch starts from the known good state, so only the chosen commits are on it.
    local branch = "recovery/" .. C.stamp():gsub("-", "_")
    git.branch{ repo = p.repo, name = branch, ref = p.baseline }
    git.checkout{ repo = p.repo, ref = branch }
    state.done[#state.done + 1] = "branch " .. branch
    for _, c in ipairs(p.commits) do
      -- A conflict stops the run naming the commit; the branch holds the ones already applied.
      git.cherry_pick{ repo = p.repo, commit = c }
      state.done[#state.done + 1] = "recovered " .. c
    end
  end
end }

step{ "Reinstall dependencies", timeout = "20m", run = function(p)
  if p.level ~= "L1" then return end
  local v = venv(p)
  -- clean -x moved an in-tree venv to the artifacts: build a fresh one.
  if not fs.exists(v .. "/bin/python") then pip.venv{ path = v } end
  local reqs = p.repo .. "/" .. p.backend_dir .. "/requirements.txt"
  if fs.exists(reqs) then
    pip.install{ venv = v, requirements = reqs, find_links = not C.empty(p.find_links) and p.find_links or nil,
                 no_index = p.no_index or nil }
  end
  if p.frontend_dir ~= "" and fs.exists(p.repo .. "/" .. p.frontend_dir .. "/package-lock.json") then
    npm.ci{ dir = p.repo .. "/" .. p.frontend_dir }
  end
end }

step{ "Restart and test", timeout = "20m", run = function(p)
  if p.level == "L1" and p.restart then
    C.start_all(services(p))
    local urls = { p.backend_url }
    if p.frontend_dir ~= "" then urls[#urls + 1] = p.frontend_url end
    C.wait_healthy(urls, p.healthy_within)
  end
  if p.level == "L3" then
    -- "Run tests for affected files": tests/unit/test_<basename> where it exists.
    local tests = {}
    for _, f in ipairs(p.files) do
      local t = "tests/unit/test_" .. C.basename(f)
      if fs.exists(p.repo .. "/" .. t) then tests[#tests + 1] = t end
    end
    if #tests == 0 then return log.warn("no related tests found for " .. table.concat(p.files, ", ")) end
    local r, _, failed = run_tests(p, tests)
    if r.code ~= 0 then error(failed .. " related tests fail after the rollback", 0) end
    log.info("related tests: " .. table.concat(tests, ", "))
  elseif p.level == "recover" then
    local r, _, failed = run_tests(p)
    if r.code ~= 0 then log.warn("tests failing (" .. failed .. "): review the recovered changes") end
  end
end }

step{ "Notify and record metrics", always = true, run = function(p)
  local minutes = (time.now() - (state.started or time.now())) / 60
  C.print_block("Rollback notification", {
    "Sprint: " .. (p.sprint ~= "" and p.sprint or "-"),
    "Time: " .. C.iso(),
    "Severity: " .. p.severity,
    "Level: " .. p.level,
    "Actions taken: " .. (#state.done > 0 and table.concat(state.done, "; ") or "none"),
    "Branches: safe " .. p.baseline .. ", failed " .. tostring(state.branch) .. ", backup " .. tostring(state.backup or "-"),
    "Evidence: " .. tostring(state.evidence or "-"),
  })
  if p.level == "analyze" then return end
  local stats = C.record_metrics(evidence_root(p) .. "/metrics.json", {
    timestamp = C.iso(), sprint = p.sprint, severity = p.severity, cause = p.cause, level = p.level,
    recovery_time_minutes = math.floor(minutes * 10 + 0.5) / 10 })
  log.info("rollbacks recorded: " .. tostring(stats.total_rollbacks))
  C.notice(p, "finish", { outcome = run.failed and "failed" or "succeeded", issue = p.issue ~= "" and p.issue or p.cause,
                          impact = p.impact, action = (#state.done > 0 and table.concat(state.done, "; ") or "none"),
                          status = run.failed and ("step " .. run.failed.step .. " '" .. run.failed.step_name .. "': " .. tostring(run.failed.error)) or nil })
end }
