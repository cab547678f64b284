-- runbook.files under runbook test: the primitives each edit goes through.
local t = require "runbook.test"
local H = require "helpers"
local files = require "runbook.files"

t.case("append: old content, a newline, the text", function()
  local r = H.run("append", { ["fs.exists"] = H.const(true), ["fs.read"] = H.const("first entry") }, { path = "/srv/app/logs/rb.log" })
  t.called(r, "fs.mkdir", { path = "/srv/app/logs" })
  t.called(r, "fs.write", { path = "/srv/app/logs/rb.log", content = "first entry\nrolled back" })
  t.eq(H.result(r).bytes, #"first entry\nrolled back")
end)

t.case("set_env: a key present is edited in place by sed after a private backup", function()
  local r = H.run("set_env", {
    ["fs.exists"] = H.const(true), ["fs.stat"] = { exists = true, size = 40 },
    ["exec"] = function(a)
      if a.argv[1] == "grep" and a.argv[2] == "-qxF" then return { code = 1 } end  -- not already so
      return { code = 0 }
    end,
    ["fs.backup"] = H.const("/runs/1/artifacts/.env.bak"),
  }, { path = "/srv/app/.env" })
  t.eq(r.outcome, "succeeded")
  t.called(r, "fs.backup", { path = "/srv/app/.env", private = true })
  t.called(r, "exec", { argv = { "sed", "-i", "-E", "-f", "-", "/srv/app/.env" },
                        stdin = "s/^(export +)?ROLLBACK_MODE=.*/\\1ROLLBACK_MODE=true/\n" })
  t.not_called(r, "fs.read")   -- the file's secrets never pass through the run
  t.not_called(r, "fs.write")
  t.eq(H.result(r), { result = "set", path = "/srv/app/.env", backup = "/runs/1/artifacts/.env.bak" })
end)

t.case("set_env: already so is unchanged, no backup, no edit", function()
  local r = H.run("set_env", { ["fs.exists"] = H.const(true), ["fs.stat"] = { size = 40 }, ["exec"] = { code = 0 } })
  t.eq(H.result(r).result, "unchanged")
  t.not_called(r, "fs.backup")
end)

t.case("set_env: a key absent is appended", function()
  local r = H.run("set_env", { ["fs.exists"] = H.const(true), ["fs.stat"] = { size = 40 }, ["exec"] = { code = 1 } },
                  { path = "/srv/app/.env" })
  t.called(r, "exec", { argv = { "sed", "-i", "-f", "-", "/srv/app/.env" }, stdin = "$a ROLLBACK_MODE=true\n" })
  t.eq(H.result(r).result, "added")
end)

t.case("set_env: an unreadable file is an error, not a silent edit", function()
  local r = H.run("set_env", { ["fs.exists"] = H.const(true), ["fs.stat"] = { size = 40 },
                               ["exec"] = { code = 2, stderr = "grep: /srv/app/.env: Permission denied" } })
  t.eq(r.outcome, "failed")
  t.ok(r.error:find("files.set_env: cannot read /srv/app/file", 1, true), r.error)
  t.not_called(r, "fs.backup")
end)

t.case("bad arguments name the call and the argument", function()
  local e = H.error_of(files.append, { path = "/x", text = 5 })
  t.ok(e:find("files.append: bad argument 'text' (string expected, got number)", 1, true), e)
  e = H.error_of(files.set_env, { path = "/x/.env", key = "A B", value = "1" })
  t.ok(e:find("files.set_env: bad argument 'key' (env key 'A B' is not a plain name)", 1, true), e)
  e = H.error_of(files.set_env, { path = "/x/.env", key = "A", value = "x;rm -rf /" })
  t.ok(e:find("files.set_env: bad argument 'value' (a value of letters, digits and ._:@- expected", 1, true), e)
  e = H.error_of(files.set_env, { path = "/x/.env", key = "A" })
  t.ok(e:find("files.set_env: bad argument 'value' (a value expected, got no value)", 1, true), e)
end)
