-- runbook.files: the small file edits rollbacks make: appending an entry to a text log (the
-- seeds' rollback log) and setting KEY=value in an env file without the file's secrets ever
-- passing through the run. All through primitives (fs.*, exec of grep and sed).
--
--   local files = require "runbook.files"
--   files.append{ path = "/srv/app/logs/rollbacks.log", text = "[2026-12-04 10:00 UTC] rolled back to v1.4.2" }
--   local r = files.set_env{ path = "/srv/app/.env", key = "FEATURE_X_ENABLED", value = "false" }
local util = require "runbook.util"

local M = {}

M.__api = {
  module = "runbook.files",
  doc = "File edits of a rollback: append an entry to a text log, set KEY=value in an env file (the file's " ..
        "content never passes through the run, so its secrets are not journaled; a private backup first).",
  functions = {
    {
      name = "append",
      call = "files.append{ path = \"/srv/app/logs/rollbacks.log\", text = \"rolled back to v1.4.2\" }",
      doc = "Appends `text` to a file on a line of its own (a newline is added between the old content and it " ..
            "when missing, and after it when `newline`), creating the file and its directory. Written with " ..
            "fs.write: atomic, and the old content is kept as an artifact of the run, so even the record of what " ..
            "was done cannot be lost by writing it.",
      args = {
        { name = "path", type = "path", required = true, doc = "the file" },
        { name = "text", type = "string", required = true, doc = "what to append" },
        { name = "newline", type = "boolean", required = false, default = false, doc = "end the text with a newline when it does not" },
      },
      returns = "{ path, bytes, previous }",
      results = {
        { name = "path", type = "string", doc = "the file" },
        { name = "bytes", type = "integer", doc = "the file's size after the append" },
        { name = "previous", type = "string", doc = "artifact path of the old content, or nil" },
      },
    },
    {
      name = "set_env",
      call = "files.set_env{ path = \"/srv/app/.env\", key = \"ROLLBACK_MODE\", value = \"true\" }",
      doc = "Sets KEY=value in an env file, keeping every other line and comment (and an `export ` prefix). " ..
            "Env files hold secrets, so the file's content never passes through the runbook (where it would be " ..
            "journaled): grep probes for the line, sed edits it in place (the value on their stdin, never in a " ..
            "command line), and fs.backup{ private = true } keeps a " ..
            "copy first in the run's artifacts (0600), never beside the file where `git add -A` would commit it. " ..
            "Keys must be plain names and values plain words ([A-Za-z0-9._:@-]), so sed sees no metacharacters.",
      args = {
        { name = "path", type = "path", required = true, doc = "the env file (created when missing)" },
        { name = "key", type = "string", required = true, doc = "the variable: a plain name",
          check = function(k)
            if k:match("^[%a_][%w_]*$") and #k <= 256 then return true end
            return false, "env key '" .. k:sub(1, 40) .. "' is not a plain name"
          end },
        { name = "value", type = "any", required = true, doc = "the value (a string, number or boolean)",
          check = function(v)
            if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
              return false, "string, number or boolean expected, got " .. type(v)
            end
            local s = tostring(v)
            if #s > 4096 or not s:match("^[%w%._:@%-]*$") then
              return false, "a value of letters, digits and ._:@- expected; this edit refuses other characters"
            end
            return true
          end },
      },
      returns = "{ result = \"unchanged\" | \"set\" | \"added\", path, backup }",
      results = {
        { name = "result", type = "string", doc = "\"unchanged\" (already so), \"set\" (the line changed) or \"added\" (a new line)" },
        { name = "path", type = "string", doc = "the env file" },
        { name = "backup", type = "string", doc = "the private backup of the file before the edit, or nil (unchanged, or a new file)" },
      },
    },
  },
}

local spec = util._specs(M.__api)

local function parent(path)
  local dir = path:match("^(.*)/[^/]+$") or "."
  return dir == "" and "/" or dir
end

function M.append(args)
  local a = util.check_args{ call = "files.append", args = args, spec = spec.append }
  local old = ""
  if fs.exists(a.path) then old = fs.read(a.path) end
  if old ~= "" and old:sub(-1) ~= "\n" then old = old .. "\n" end
  local text = a.text
  if a.newline and text:sub(-1) ~= "\n" then text = text .. "\n" end
  fs.mkdir(parent(a.path))
  local w = fs.write(a.path, old .. text)
  return { path = a.path, bytes = #old + #text, previous = type(w) == "table" and w.previous or nil }
end

-- grep's answer: 0 found, 1 not found, anything else (an unreadable file) is an error.
local function found(r, file)
  if r.code == 0 then return true end
  if r.code == 1 then return false end
  -- A dry-run after a planned change cannot know the answer (an unknown): plan the edit.
  if run.dry_run then return false end
  error("files.set_env: cannot read " .. file .. ": " .. tostring(r.error or r.stderr or ("grep exited " .. tostring(r.code))), 3)
end

-- The value goes to grep and sed on their standard input, never in their argv: a secret value
-- would be readable by every user in /proc/PID/cmdline (exec refuses that), and on stdin the
-- journal gets it redacted like any secret argument.
function M.set_env(args)
  local a = util.check_args{ call = "files.set_env", args = args, spec = spec.set_env }
  local file, key, value = a.path, a.key, tostring(a.value)
  local line = key .. "=" .. value
  if not fs.exists(file) or (fs.stat(file).size or 0) == 0 then
    fs.write(file, line .. "\n")
    return { result = "added", path = file }
  end
  -- Fixed strings, whole lines: the line as it would be, with or without `export `.
  local same = exec{ "grep", "-qxF", "-f", "-", file, stdin = line .. "\nexport " .. line .. "\n",
                     readonly = true, check = false }
  if found(same, file) then return { result = "unchanged", path = file } end
  local backup = fs.backup{ path = file, private = true }
  local present = exec{ "grep", "-qE", "^(export +)?" .. key .. "=", file, readonly = true, check = false }
  if found(present, file) then
    exec{ "sed", "-i", "-E", "-f", "-", file, stdin = "s/^(export +)?" .. key .. "=.*/\\1" .. line .. "/\n" }
    return { result = "set", path = file, backup = backup }
  end
  exec{ "sed", "-i", "-f", "-", file, stdin = "$a " .. line .. "\n" }
  return { result = "added", path = file, backup = backup }
end

return M
