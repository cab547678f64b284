-- lint: none
runbook {
  name = "good",
  version = "1.0.0",
  params = { root = { type = "path", default = "/tmp/x" } },
}

step("Back up, then look", function(p)
  local bk = fs.backup{ path = p.root .. "/config", dir = p.root .. "/backups" }
  log.info("backup at " .. bk)
  local h = git.head{ repo = p.root }
  log.info(h.short .. " " .. (h.tag or "untagged"))
  local r = exec{ "systemctl", "is-active", "app", check = false }
  if not r.ok then log.warn(r.stderr) end
end)
