// exec{ "prog", "arg", ..., cwd =, env =, stdin =, timeout =, readonly =, detached = } — a program
// by argv, never a shell string. Nothing it starts outlives it unless detached = true. An argv
// holding a registered secret is refused (argv is world-readable) unless allow_secret_argv = true.
#include <filesystem>

#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/service_backend.h"
#include "effects/util.h"

namespace rb {

namespace {
std::string secret_argv_text(long index) {
  return "refused to run: argv item " + std::to_string(index + 1) +
         " holds a secret, and every user can read a process's arguments (/proc/PID/cmdline, "
         "ps); pass it by env = { NAME = secret } or stdin = secret instead (allow_secret_argv = "
         "true runs it anyway, dangerous)";
}
}  // namespace

void register_exec(Registry& r) {
  Effect e;
  e.name = "exec";
  e.summary =
      "Run a program by argv (never through a shell), with a timeout and its output captured";
  e.kind = Kind::Change;
  e.rest = "argv";
  e.checkable = true;
  e.args = {req("argv", ArgType::List,
                "program and arguments: exec{ \"systemctl\", \"restart\", \"app\" }"),
            opt("cwd", ArgType::Path, "working directory"),
            opt("env", ArgType::Map, "environment variables added to the inherited ones"),
            opt("stdin", ArgType::String,
                "text fed to the program's standard input (secrets go here, not in argv)"),
            opt("timeout", ArgType::Duration, "the program's group gets TERM after this, then KILL",
                "60s"),
            opt("grace", ArgType::Duration, "time between TERM and KILL", "3s"),
            opt("readonly", ArgType::Bool,
                "true: the program only reads, so it is a probe and runs in dry-run. It must write "
                "nothing at all: a test suite (pytest, npm test) writes caches, reports and test "
                "data, so it is not readonly and runs live only", false),
            opt("detached", ArgType::Bool,
                "true: what the program starts in the background (a daemon) keeps running after it "
                "exits; "
                "otherwise its process group and anything that escaped it get TERM, then KILL "
                "after grace",
                false),
            opt("allow_secret_argv", ArgType::Bool,
                "DANGEROUS. true: run even though an argument holds a registered secret. Every user "
                "on the machine can read a process's arguments (/proc/PID/cmdline, ps); pass secrets "
                "by env = or stdin = instead",
                false)};
  e.returns = "{ code, stdout, stderr, duration (ms), timed_out }";
  e.results = {{"code", "integer", "exit status"}, {"stdout", "string", "standard output"}, {"stderr", "string", "standard error"}, {"duration", "integer", "milliseconds"}, {"timed_out", "boolean", "whether the timeout killed it"}};
  e.kind_for = [](const Args& a) { return a.boolean("readonly") ? Kind::Probe : Kind::Change; };
  e.describe = [](const Args& a) {
    std::string s = "run " + display_argv(a.strings("argv"));
    if (a.has("cwd")) s += "  (in " + a.str("cwd") + ")";
    return s;
  };
  e.apply = [](EffectContext& ctx, const Args& a) {
    os::ProcessSpec spec;
    spec.argv = a.strings("argv");
    if (spec.argv.empty()) throw ArgError("bad argument 'argv' to 'exec' (empty)");
    // execve ends each string at a NUL: the program would silently get a shorter argument.
    for (size_t i = 0; i < spec.argv.size(); ++i)
      if (spec.argv[i].find('\0') != std::string::npos)
        throw ArgError("bad argument 'argv' to 'exec' (item " + std::to_string(i + 1) +
                       " holds a NUL byte)");
    bool allow_secret = a.boolean("allow_secret_argv");
    long si = secret_argv_index(ctx, spec.argv);
    if (si >= 0 && !allow_secret) throw EffectError(secret_argv_text(si));
    if (si >= 0)
      ctx.note("allow_secret_argv: argv item " + std::to_string(si + 1) +
               " holds a secret, readable by every user while the program runs");
    spec.cwd = a.str_or("cwd", "");
    spec.env = a.string_map("env");
    for (const auto& [k, v] : spec.env)
      if (k.find('\0') != std::string::npos || v.find('\0') != std::string::npos ||
          k.find('=') != std::string::npos || k.empty())
        throw ArgError("bad argument 'env' to 'exec' (a name is non-empty, without '=' or NUL; "
                       "a value without NUL)");
    if (a.has("stdin")) spec.stdin_data = a.str("stdin");
    spec.timeout = a.duration("timeout");
    spec.grace = a.duration("grace");
    spec.detached = a.boolean("detached");
    auto res = run_process_checked(ctx, spec, true, display_argv(spec.argv), allow_secret);
    return process_json(res);
  };
  // A change's preview only says whether it can start at all: a program that is not there (or a
  // working directory that is not) fails the live run before anything runs. What the program
  // then does is its own business, so there is no basis and no text.
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    auto argv = a.strings("argv");
    if (argv.empty()) return nullptr;  // apply names the bad argument
    long si = secret_argv_index(ctx, argv);
    if (si >= 0 && !a.boolean("allow_secret_argv")) throw WouldFail(secret_argv_text(si));
    // An earlier planned change may create the program or the directory (an install, a checkout).
    if (paths_may_appear(ctx)) return nullptr;
    if (os::which(argv[0]).empty()) throw WouldFail(os::not_found_text(argv[0]));
    std::error_code ec;
    if (a.has("cwd") && !std::filesystem::is_directory(a.str("cwd"), ec))
      throw WouldFail("cannot enter directory " + a.str("cwd") + ": " +
                      (std::filesystem::exists(a.str("cwd"), ec) ? "Not a directory" : "No such file or directory"));
    return nullptr;
  };
  // Whatever it does may restart the app or start and stop processes: later HTTP answers and
  // process lists of the rehearsal are unknown.
  e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
    std::string label = "exec " + truncate(display_argv(a.strings("argv")), 120);
    taint_probes(ctx, label);
    // Kept after later taints: a program run may have created files (paths_may_appear).
    json& p = ctx.predictions();
    if (!p["exec"].is_object()) p["exec"] = json::object();
    p["exec"]["last"] = label;
  };
  e.planned = [](const Args&, const json&) {
    return json{{"code", 0}, {"stdout", ""}, {"stderr", ""}, {"duration", 0}, {"timed_out", false}};
  };
  // A readonly program (a test suite, a status command) reads whatever it likes: once any
  // change is planned, what it would print in the live run is not known. Before any, it runs.
  e.predicted = [](EffectContext& ctx, const Args& a) -> json {
    const json& p = ctx.predictions();
    std::string after;
    for (auto it = p.begin(); it != p.end() && after.empty(); ++it) {
      if (it.key() == "taint" || !it->is_object() || it->empty()) continue;
      after = it.key() == "exec" && it->contains("last") && (*it)["last"].is_string()
                  ? (*it)["last"].get<std::string>()
                  : "a planned " + it.key() + " change";
    }
    if (after.empty()) return nullptr;
    return unknown_value("exec " + truncate(display_argv(a.strings("argv")), 120) + " after " + after);
  };
  // Whatever a program does is its own business: after a crash nothing here can tell whether it
  // ran, so a resume asks the operator (--assume-done or --redo).
  e.verify = [](EffectContext&, const Args&) -> json { return nullptr; };
  r.add(std::move(e));
}

}  // namespace rb
