// service.define/start/stop/restart/status: a service is declared once per run (or by a
// `services` module the runbook requires, which is Lua calling service.define for each) and then
// named. Start of a running service and stop of a stopped one succeed without acting, and say so.
// The backends (service_process.cc, service_cli.cc) only act; this file decides whether to.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/clock.h"
#include "core/secrets.h"
#include "core/unknown.h"
#include "core/strings.h"
#include "effects/effects.h"
#include "effects/service_backend.h"
#include "effects/util.h"
#include "os/http_client.h"
#include "os/process.h"

namespace rb {
namespace {
namespace stdfs = std::filesystem;

const std::vector<std::string> kBackends = {"process", "systemd", "supervisor", "pm2", "compose"};

std::string absolute(const std::string& p, const std::string& base = "") {
  stdfs::path path(p);
  if (path.is_relative() && !base.empty()) path = stdfs::path(base) / path;
  std::error_code ec;
  return stdfs::absolute(path, ec).lexically_normal().string();
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.front() == '.' || n.size() > 200) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '@'))
      return false;
  return true;
}

// The definition from service.define's arguments, validated and with every default filled in.
ServiceDef parse_def(const Args& a) {
  const std::string eff = "service.define";
  ServiceDef d;
  d.name = a.str("name");
  if (!valid_name(d.name))
    bad_arg(eff, "name", "letters, digits, '_', '-', '.', '@' expected (it names the pidfile), got \"" +
                             d.name + "\"");
  d.backend = a.str("backend");
  bool known = false;
  for (const auto& b : kBackends) known = known || b == d.backend;
  if (!known) bad_arg(eff, "backend", "one of " + join(kBackends, ", ") + " expected, got \"" + d.backend + "\"");
  d.argv = a.strings("argv");
  if (a.has("cwd")) d.cwd = absolute(a.str("cwd"));
  d.env = a.string_map("env");
  d.health = a.str_or("health", "");
  if (!d.health.empty() && d.health.rfind("http://", 0) != 0 && d.health.rfind("https://", 0) != 0)
    bad_arg(eff, "health", "an http:// or https:// URL expected, got \"" + d.health + "\"");
  d.stop_timeout = a.duration("stop_timeout");
  d.start_timeout = a.duration("start_timeout");
  d.settle = a.duration("settle");
  d.unit = a.str_or("unit", d.name);
  d.program = a.str_or("program", d.name);
  d.app = a.str_or("app", d.name);
  d.compose_service = a.str_or("compose_service", d.name);
  d.project = a.str_or("project", "");
  d.compose_command = a.str_or("compose_command", "");
  if (!d.compose_command.empty() && d.compose_command != "docker compose" && d.compose_command != "docker-compose")
    bad_arg(eff, "compose_command", "\"docker compose\" (v2) or \"docker-compose\" (v1) expected, got \"" +
                                        d.compose_command.substr(0, 100) + "\"");
  if (!d.compose_command.empty() && d.backend != "compose")
    bad_arg(eff, "compose_command", "only the compose backend runs docker compose");
  if (a.has("config")) d.config = absolute(a.str("config"), d.cwd);
  d.serverurl = a.str_or("serverurl", "");
  if (a.has("socket")) {
    if (!d.serverurl.empty()) bad_arg(eff, "socket", "give socket or serverurl, not both");
    d.serverurl = "unix://" + absolute(a.str("socket"), d.cwd);
  }
  if (a.has("port")) {
    int64_t port = a.integer("port");
    if (port < 1 || port > 65535) bad_arg(eff, "port", "a TCP port 1-65535 expected, got " + std::to_string(port));
    d.port = static_cast<int>(port);
  }
  if (a.has("cmdline")) {
    d.match = a.strings("cmdline");
    if (d.match.empty() || d.match.size() > 64)
      bad_arg(eff, "cmdline", "the first 1 to 64 elements of the process's argv expected, e.g. { \"python3\", \"app.py\" }");
    for (const auto& m : d.match)
      if (m.size() > 4096 || m.find('\0') != std::string::npos)
        bad_arg(eff, "cmdline", "an argv element without NUL, up to 4096 bytes, expected");
  }
  if (d.backend != "process")
    for (const char* only : {"port", "cmdline"})
      if (a.has(only)) bad_arg(eff, only, "only the process backend adopts a process by " + std::string(only));
  if (d.backend == "process") {
    if (d.argv.empty() && d.port == 0 && d.match.empty())
      bad_arg(eff, "argv", "the process backend needs the program and its arguments (or port / cmdline to adopt a running one)");
    std::string dir = service_state_dir();
    d.pidfile = a.has("pidfile") ? absolute(a.str("pidfile"), d.cwd) : dir + "/" + d.name + ".pid";
    d.log = a.has("log") ? absolute(a.str("log"), d.cwd) : dir + "/" + d.name + ".log";
  } else {
    for (const char* only : {"pidfile", "log"})
      if (a.has(only)) bad_arg(eff, only, "only the process backend keeps a " + std::string(only));
  }
  return d;
}

// Values of the environment a service gets that are secrets by their name (DB_PASSWORD,
// API_TOKEN), and passwords inside URLs: redacted from the journal and the output.
std::vector<std::string> env_secrets(const Args& a) {
  std::vector<std::string> out;
  auto add_url_password = [&](const std::string& v) {
    if (std::string pw = url_password(v); !pw.empty()) out.push_back(pw);
  };
  if (a.has("env") && a.at("env").is_object()) {
    for (const auto& [k, v] : a.string_map("env")) {
      if (secret_name(k) && !v.empty()) out.push_back(v);
      add_url_password(v);
    }
  }
  for (const char* k : {"health", "serverurl"})
    if (a.has(k) && a.at(k).is_string()) add_url_password(a.str(k));
  return out;
}

std::string pid_text(pid_t pid) { return pid > 0 ? " (pid " + std::to_string(pid) + ")" : ""; }

std::string state_text(const ServiceStatus& s) {
  std::string t = s.state + (s.adopted && s.pid > 0 ? " (pid " + std::to_string(s.pid) + ", " + s.detail + ")"
                                                     : pid_text(s.pid)) +
                  (s.detail == "planned" ? " (as planned)" : "");
  if (s.stale) t += " [" + s.detail + "]";
  return t;
}

json pid_json(pid_t pid) { return pid > 0 ? json(pid) : json(nullptr); }

ServiceDef lookup(EffectContext& ctx, const Args& a) {
  std::string name = a.str("name");
  json& all = ctx.state("service");
  if (!all.contains(name)) {
    std::vector<std::string> known;
    for (auto it = all.begin(); it != all.end(); ++it) known.push_back(it.key());
    throw EffectError("no service '" + name + "' is defined in this run; call service.define{ name = \"" +
                      name + "\", ... } first" +
                      (known.empty() ? "" : " (defined: " + join(known, ", ") + ")"));
  }
  return ServiceDef::from_json(all[name]);
}

json base_result(const ServiceDef& d, const ServiceStatus& s) {
  json r{{"name", d.name}, {"backend", d.backend}, {"state", s.state}, {"pid", pid_json(s.pid)}};
  if (!s.since.empty()) r["since"] = s.since;
  if (!s.detail.empty()) r["detail"] = s.detail;
  if (s.stale) r["stale"] = true;
  if (s.adopted) r["adopted"] = true;
  if (d.port > 0) r["port"] = d.port;
  return r;
}

void merge(json& into, const json& from) {
  if (!from.is_object()) return;
  for (auto it = from.begin(); it != from.end(); ++it) into[it.key()] = it.value();
}

std::vector<ArgSpec> name_args() { return {req("name", ArgType::String, "the service's name (from service.define)")}; }

enum class Verb { Start, Stop, Restart };
const char* verb_name(Verb v) { return v == Verb::Start ? "start" : v == Verb::Stop ? "stop" : "restart"; }
std::string target_of(Verb v) { return v == Verb::Stop ? "stopped" : "running"; }

}  // namespace

bool paths_may_appear(EffectContext& ctx) {
  const json& p = ctx.predictions();
  if (!p.is_object()) return false;
  for (auto it = p.begin(); it != p.end(); ++it) {
    if (it.key() == "service") continue;
    if (it.key() != "taint") return true;
    if (!it.value().is_object()) continue;
    for (const auto& why : *it)
      if (!why.is_string() || why.get<std::string>().rfind("service.", 0) != 0) return true;
  }
  return false;
}

namespace {

// What earlier planned changes of this run left the service in: { state, after }, or null.
const json* predicted_state(EffectContext& ctx, const std::string& name) {
  const json& p = ctx.predictions();
  if (!p.is_object() || !p.contains("service") || !p["service"].is_object()) return nullptr;
  const json& all = p["service"];
  if (!all.contains(name) || !all[name].is_object() || !all[name].contains("state") ||
      !all[name]["state"].is_string())
    return nullptr;
  return &all[name];
}

std::string change_label(Verb v, const std::string& name) {
  return std::string("service.") + verb_name(v) + " " + name;
}

json preview_of(EffectContext& ctx, const Args& a, Verb v) {
  ServiceDef d;
  try {
    d = lookup(ctx, a);
  } catch (const EffectError& e) {
    throw WouldFail(e.what());  // apply looks it up the same way, in the same run state
  }
  auto be = make_backend(d.backend);
  bool may_appear = paths_may_appear(ctx);
  // Apply asks the backend for the status first: a manager it cannot reach fails it.
  if (!may_appear)
    if (std::string why = be->unreachable(d); !why.empty()) throw WouldFail(why);
  auto cmd = be->command(d, verb_name(v));
  ServiceStatus cur;
  // Previews run only in dry-run, where earlier changes were planned, not made: the state an
  // earlier planned start/stop leaves is what this one starts from.
  if (const json* pred = predicted_state(ctx, d.name)) {
    cur.state = (*pred)["state"].get<std::string>();
    cur.detail = "planned";
  } else {
    try {
      cur = be->status(ctx, d);
    } catch (const ServiceMissing& e) {
      if (may_appear) throw;  // an earlier planned change may add it: "cannot preview"
      throw WouldFail(e.what(), e.result());
    } catch (const ServiceAmbiguous& e) {
      if (!taint_of(ctx, "proc").empty()) throw;  // a planned change may end one of them
      throw WouldFail(e.what(), e.result());
    }
  }
  bool noop = (v == Verb::Start && cur.running()) || (v == Verb::Stop && !cur.running() && cur.state != "starting" && cur.state != "partial");
  if (!noop) {
    std::string why = be->would_fail(ctx, d, verb_name(v), cur, may_appear);
    if (!why.empty()) throw WouldFail(why);
  }
  std::string text = d.name + ": " + state_text(cur) + " → " +
                     (v == Verb::Restart && cur.running() ? "restarted, running" : target_of(v));
  if (noop) text = d.name + ": " + state_text(cur) + " already; nothing to do";
  if (!cmd.empty() && !noop) text += " (" + display_argv(cmd) + ")";
  // The basis is the state only: a pid (or a start time) would make every plan drift.
  return json{{"text", text},     {"state", cur.state},     {"pid", pid_json(cur.pid)},
              {"changed", !noop}, {"backend", d.backend}, {"basis", {{"state", cur.state}}}};
}

// After a planned change the service is in its target state, with a pid nobody knows yet; its
// HTTP answers and the process table are no longer what a probe of the world sees.
void predict_of(EffectContext& ctx, const Args& a, const json& pv, Verb v) {
  bool acts = !(pv.is_object() && pv.contains("changed") && pv["changed"].is_boolean() &&
                !pv["changed"].get<bool>());
  if (!acts) return;  // a start of a running service, a stop of a stopped one: nothing changes
  std::string name = a.str("name"), label = change_label(v, name);
  json& p = ctx.predictions();
  if (!p.is_object()) p = json::object();
  if (!p["service"].is_object()) p["service"] = json::object();
  p["service"][name] = {{"state", target_of(v)}, {"after", label}};
  taint_probes(ctx, label);
}

// service.status from the predicted state, shaped as each backend's live answer: what the
// backend would report and a dry-run cannot know (the new pid, its start time, the manager's
// status line) is unknown.
json predicted_status(EffectContext& ctx, const Args& a) {
  const json* pred = predicted_state(ctx, a.str("name"));
  if (!pred) return nullptr;
  ServiceDef d = lookup(ctx, a);
  std::string state = (*pred)["state"].get<std::string>();
  std::string after = pred->contains("after") && (*pred)["after"].is_string() ? (*pred)["after"].get<std::string>()
                                                                               : "a planned change";
  json unknown = unknown_value("service.status " + d.name + " after " + after);
  json r{{"name", d.name}, {"backend", d.backend}, {"state", state}, {"pid", nullptr}};
  bool running = state == "running";
  if (running) {
    if (d.backend != "compose") r["pid"] = unknown;  // compose reports no pid
    if (d.backend == "process" || d.backend == "pm2") r["since"] = unknown;
  }
  if (d.backend == "process") {
    if (!running) r["detail"] = "no pidfile " + d.pidfile;  // stop removes it
  } else if (d.backend == "systemd") {
    r["detail"] = running ? "active" : "inactive";
  } else if (d.backend == "pm2") {
    r["detail"] = running ? "pm2: online" : "pm2: stopped";
  } else {
    r["detail"] = unknown;  // supervisor's status line, compose's container status: times in them
  }
  return r;
}

json planned_of(const Args& a, const json& pv, Verb v) {
  json r{{"name", a.str("name")}, {"state", target_of(v)}, {"pid", nullptr}, {"changed", true}};
  if (pv.is_object() && pv.contains("changed")) {
    r["changed"] = pv["changed"];
    r["backend"] = pv.value("backend", "");
    if (v == Verb::Stop || !pv["changed"].get<bool>()) r["pid"] = pv["pid"];
    if (v != Verb::Start) r["previous_pid"] = pv["pid"];
  }
  return r;
}

json verify_of(EffectContext& ctx, const Args& a, Verb v) {
  ServiceDef d = lookup(ctx, a);
  ServiceStatus s = make_backend(d.backend)->status(ctx, d);
  bool there = s.state == target_of(v);
  // A restart that left it running may or may not have happened: only the journal can tell.
  if (v == Verb::Restart && there) return nullptr;
  return there;
}

json apply_verb(EffectContext& ctx, const Args& a, Verb v) {
  ServiceDef d = lookup(ctx, a);
  auto be = make_backend(d.backend);
  ServiceStatus cur = be->status(ctx, d);
  if (cur.stale) ctx.note(d.name + ": " + cur.detail);
  json out = json::object();
  if (v == Verb::Start && cur.running()) {
    std::string msg = d.name + ": already running" + pid_text(cur.pid) + "; not started again";
    ctx.note(msg);
    json r = base_result(d, cur);
    r["changed"] = false;
    r["message"] = msg;
    return r;
  }
  if (v == Verb::Stop && !cur.running() && cur.state != "starting" && cur.state != "partial") {
    std::string msg = d.name + ": not running; nothing to stop" + (cur.stale ? " (" + cur.detail + ")" : "");
    ctx.note(msg);
    json r = base_result(d, cur);
    r["state"] = "stopped";
    r["pid"] = nullptr;
    r["changed"] = false;
    r["message"] = msg;
    return r;
  }
  if (v == Verb::Start) be->start(ctx, d, out);
  else if (v == Verb::Stop) be->stop(ctx, d, cur, out);
  else be->restart(ctx, d, cur, out);
  ServiceStatus now = be->status(ctx, d);
  json r = base_result(d, now);
  merge(r, out);
  r["changed"] = true;
  if (v != Verb::Start) r["previous_pid"] = pid_json(cur.pid);
  if (v == Verb::Stop) {
    r["pid"] = pid_json(cur.pid);
    if (!now.stale) r.erase("detail");  // "no pidfile" after a stop says nothing new
    if (now.running())
      throw EffectError(d.name + " still runs after stop: " + state_text(now), r);
  } else if (!now.running() && now.state != "starting") {
    throw EffectError(d.name + " is " + state_text(now) + " after " + verb_name(v) +
                          (now.detail.empty() || now.stale ? "" : ": " + now.detail),
                      r);
  }
  if (!r.contains("message"))
    r["message"] = d.name + ": " + (v == Verb::Stop ? "stopped" : v == Verb::Start ? "started" : "restarted") +
                   pid_text(v == Verb::Stop ? cur.pid : now.pid);
  return r;
}

void add_verb(Registry& reg, Verb v) {
  Effect e;
  e.name = std::string("service.") + verb_name(v);
  e.kind = Kind::Change;
  e.args = name_args();
  e.positional = {"name"};
  if (v == Verb::Start) {
    e.summary = "Start a defined service and wait until it runs (or is healthy, or listens on its port); a running one is left alone; a failed start stops what it started";
    e.returns = "{ name, backend, state = \"running\", pid, since, changed, message, log, waited (ms) }";
  } else if (v == Verb::Stop) {
    e.summary = "Stop a defined service (process: TERM to its group, KILL after stop_timeout, also a process adopted by port/cmdline; with port, fails while the port is still held); a stopped one is left alone";
    e.returns = "{ name, backend, state = \"stopped\", pid (the one stopped), changed, message, signal, adopted, port_released }";
  } else {
    e.summary = "Restart a defined service (stop if it runs, then start, waiting for health)";
    e.returns = "{ name, backend, state = \"running\", pid, previous_pid, changed = true, message }";
  }
  // Every verb answers with the fields of the service (a stop also says how it ended).
  e.results = {{"name", "string", "the service"}, {"backend", "string", "its backend"}, {"state", "string", "\"running\" or \"stopped\""}, {"pid", "integer", "the pid"}, {"previous_pid", "integer", "restart/stop: the pid before"}, {"since", "string", "when it started"}, {"changed", "boolean", "whether it acted"}, {"message", "string", "what happened"}, {"log", "string", "its log file"}, {"waited", "integer", "milliseconds"}, {"signal", "string", "stop: the signal that ended it"}, {"adopted", "boolean", "stop: found by port/cmdline"}, {"port_released", "boolean", "stop: the port is free"}, {"detail", "string", "the backend's words"}, {"port", "integer", "its port"}, {"pidfile", "string", "process: its pidfile"}, {"stale", "boolean", "a stale pidfile was found"}, {"stop_signal", "string", "restart: the signal that stopped it"}, {"healthy", "boolean", "start/restart: health answered (a backend with a health URL)"}, {"was", "string", "a failed start: what the process did (\"exited\", ...)"}};
  e.describe = [v](const Args& a) { return std::string(verb_name(v)) + " service " + a.str("name"); };
  e.preview = [v](EffectContext& ctx, const Args& a) { return preview_of(ctx, a, v); };
  e.planned = [v](const Args& a, const json& pv) { return planned_of(a, pv, v); };
  e.predict = [v](EffectContext& ctx, const Args& a, const json& pv, const json&) { predict_of(ctx, a, pv, v); };
  e.verify = [v](EffectContext& ctx, const Args& a) { return verify_of(ctx, a, v); };
  e.apply = [v](EffectContext& ctx, const Args& a) { return apply_verb(ctx, a, v); };
  reg.add(std::move(e));
}

}  // namespace

json ServiceDef::to_json() const {
  json j{{"name", name}, {"backend", backend}};
  if (!argv.empty()) j["argv"] = argv;
  if (!cwd.empty()) j["cwd"] = cwd;
  if (!env.empty()) j["env"] = env;
  if (!log.empty()) j["log"] = log;
  if (!pidfile.empty()) j["pidfile"] = pidfile;
  if (!health.empty()) j["health"] = health;
  j["stop_timeout"] = format_duration(stop_timeout);
  j["start_timeout"] = format_duration(start_timeout);
  j["settle"] = format_duration(settle);
  if (backend == "systemd") j["unit"] = unit;
  if (backend == "supervisor") j["program"] = program;
  if (backend == "pm2") j["app"] = app;
  if (backend == "compose") j["compose_service"] = compose_service;
  if (!compose_command.empty()) j["compose_command"] = compose_command;
  if (!project.empty()) j["project"] = project;
  if (!config.empty()) j["config"] = config;
  if (!serverurl.empty()) j["serverurl"] = serverurl;
  if (port > 0) j["port"] = port;
  if (!match.empty()) j["cmdline"] = match;
  // Exact durations for from_json: the formatted ones above are for people.
  j["_ms"] = {stop_timeout.count(), start_timeout.count(), settle.count()};
  return j;
}

ServiceDef ServiceDef::from_json(const json& j) {
  ServiceDef d;
  d.name = j.value("name", "");
  d.backend = j.value("backend", "process");
  if (j.contains("argv")) d.argv = j["argv"].get<std::vector<std::string>>();
  d.cwd = j.value("cwd", "");
  if (j.contains("env")) d.env = j["env"].get<std::map<std::string, std::string>>();
  d.log = j.value("log", "");
  d.pidfile = j.value("pidfile", "");
  d.health = j.value("health", "");
  if (j.contains("_ms")) {
    d.stop_timeout = Millis(j["_ms"][0].get<int64_t>());
    d.start_timeout = Millis(j["_ms"][1].get<int64_t>());
    d.settle = Millis(j["_ms"][2].get<int64_t>());
  }
  d.unit = j.value("unit", d.name);
  d.program = j.value("program", d.name);
  d.app = j.value("app", d.name);
  d.compose_service = j.value("compose_service", d.name);
  d.project = j.value("project", "");
  d.compose_command = j.value("compose_command", "");
  d.config = j.value("config", "");
  d.serverurl = j.value("serverurl", "");
  if (j.contains("port") && j["port"].is_number_integer()) d.port = j["port"].get<int>();
  if (j.contains("cmdline") && j["cmdline"].is_array()) d.match = j["cmdline"].get<std::vector<std::string>>();
  return d;
}

std::string service_state_dir() {
  if (const char* s = std::getenv("RUNBOOK_STATE_DIR"); s && *s) return absolute(s);
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return absolute(std::string(x) + "/runbook/services");
  const char* home = std::getenv("HOME");
  return absolute(std::string(home && *home ? home : "/tmp") + "/.local/state/runbook/services");
}

void taint_probes(EffectContext& ctx, const std::string& change) {
  json& p = ctx.predictions();
  if (!p.is_object()) p = json::object();
  if (!p["taint"].is_object()) p["taint"] = json::object();
  p["taint"]["http"] = change;
  p["taint"]["proc"] = change;
}

std::string taint_of(EffectContext& ctx, const std::string& module) {
  const json& p = ctx.predictions();
  if (!p.is_object() || !p.contains("taint") || !p["taint"].is_object()) return "";
  const json& t = p["taint"];
  if (!t.contains(module) || !t[module].is_string()) return "";
  return t[module].get<std::string>();
}

std::string ServiceBackend::unreachable(const ServiceDef& d) const {
  auto cmd = command(d, "start");
  if (!cmd.empty() && os::which(cmd[0]).empty()) return os::not_found_text(cmd[0]);
  return "";
}

void ServiceBackend::restart(EffectContext& ctx, const ServiceDef& d, const ServiceStatus& cur, json& out) {
  if (cur.state != "stopped") {
    json stopped = json::object();
    stop(ctx, d, cur, stopped);
    if (stopped.contains("signal")) out["stop_signal"] = stopped["signal"];
  }
  start(ctx, d, out);
}

std::unique_ptr<ServiceBackend> make_backend(const std::string& kind) {
  if (kind == "process") return make_process_backend();
  if (auto b = make_cli_backend(kind)) return b;
  throw EffectError("unknown service backend '" + kind + "'");
}

int64_t wait_service_healthy(EffectContext& ctx, const ServiceDef& d, const std::function<std::string()>& dead,
                             const std::function<std::string()>& log_tail) {
  auto t0 = std::chrono::steady_clock::now();
  auto until = t0 + ctx.bound(d.start_timeout);
  Millis interval(100);
  std::string last = "no answer yet";
  int polls = 0;
  auto waited = [&] {
    return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t0).count();
  };
  while (true) {
    ctx.check_interrupt();
    if (dead) {
      std::string why = dead();
      if (!why.empty()) {
        std::string tail = log_tail ? log_tail() : "";
        throw EffectError(d.name + " " + why + " before it became healthy (after " +
                              format_duration(Millis(waited())) + ")" + (tail.empty() ? "" : ": " + tail),
                          json{{"name", d.name}, {"state", "stopped"}, {"health", last}});
      }
    }
    os::HttpRequest req;
    req.url = d.health;
    auto left = std::chrono::duration_cast<Millis>(until - std::chrono::steady_clock::now());
    req.timeout = std::max(Millis(1), std::min(left, Millis(2000)));
    req.connect_timeout = std::min(req.timeout, Millis(1000));
    auto resp = os::http_perform(req, [&] { ctx.check_interrupt(); });
    ++polls;
    if (resp.error.empty() && resp.status >= 200 && resp.status < 300) return waited();
    last = resp.error.empty() ? "status " + std::to_string(resp.status) : resp.error;
    auto now = std::chrono::steady_clock::now();
    if (now + Millis(20) >= until) break;
    auto pause_until = std::min(until, now + interval);
    while (std::chrono::steady_clock::now() < pause_until) {
      ctx.check_interrupt();
      ctx.progress("waiting for " + d.name + " to be healthy: " + last);
      std::this_thread::sleep_for(Millis(20));
    }
    interval = std::min(Millis(1000), interval + interval / 2);
  }
  std::string tail = log_tail ? log_tail() : "";
  throw EffectError(d.name + " not healthy after " + format_duration(Millis(waited())) + " (" +
                        std::to_string(polls) + " polls of " + d.health + "): last " + last +
                        (tail.empty() ? "" : "; log: " + tail),
                    json{{"name", d.name}, {"state", "running"}, {"health", last}});
}

void register_service(Registry& r) {
  {
    Effect e;
    e.name = "service.define";
    e.summary = "Declare a service for this run (process, systemd, supervisor, pm2 or compose); changes nothing";
    e.kind = Kind::Probe;
    e.state_only = true;  // so a resumed or replayed run knows its services too
    e.args = {
        req("name", ArgType::String, "the name service.start/stop/status use; also names the default pidfile"),
        opt("backend", ArgType::String, "process | systemd | supervisor | pm2 | compose", "process"),
        opt("argv", ArgType::List, "process: program and arguments (optional with port or cmdline: then it can be stopped, not started); pm2: script and arguments when pm2 does not know the app yet"),
        opt("port", ArgType::Int, "process: the TCP port the service listens on; a process listening there without runbook's pidfile is adopted (status, stop, restart act on it), start fails while another process holds it, stop checks it is released"),
        opt("cmdline", ArgType::List, "process: an exact prefix of the argv of the process to adopt ({ \"python3\", \"app.py\" }; whole elements, never a pattern; a first element without \"/\" also matches argv[0]'s file name: \"python3\" is /usr/bin/python3 too); with port, the port's holder (or its nearest matching ancestor: npm above its node) must match too; several unrelated matches are an error"),
        opt("cwd", ArgType::Path, "working directory (process, pm2; compose commands run there)"),
        opt("env", ArgType::Map, "environment added for the process (process), or for the backend's commands (supervisorctl, pm2, docker)"),
        opt("log", ArgType::Path, "process: stdout and stderr are appended here (default <state dir>/<name>.log); relative to cwd"),
        opt("pidfile", ArgType::Path, "process: holds the pid alone (kill $(cat FILE), systemd PIDFile=); runbook's record of the process (start time, command line) is beside it in FILE.runbook, and a pidfile without one, or naming another pid, is never acted on; default <state dir>/<name>.pid, so another runbook can stop what one started"),
        opt("health", ArgType::Url, "a URL that answers 2xx when the service is up: start and restart wait for it"),
        opt("stop_timeout", ArgType::Duration, "process: time between TERM and KILL; others: bound on the stop command", "10s"),
        opt("start_timeout", ArgType::Duration, "how long start may take (to run, or to be healthy)", "30s"),
        opt("settle", ArgType::Duration, "process without health: it must still run this long after start", "500ms"),
        opt("unit", ArgType::String, "systemd unit (default: name)"),
        opt("program", ArgType::String, "supervisor program, or group:program (default: name)"),
        opt("config", ArgType::Path, "supervisord.conf for supervisorctl -c, compose file for docker compose -f, pm2 ecosystem file"),
        opt("socket", ArgType::Path, "supervisor: the unix socket (supervisorctl -s unix://socket)"),
        opt("serverurl", ArgType::String, "supervisor: supervisorctl -s URL"),
        opt("app", ArgType::String, "pm2 app name (default: name); \"all\": every app of the pm2 daemon, as `pm2 restart all`"),
        opt("compose_service", ArgType::String, "compose: the service in the compose file (default: name)"),
        opt("project", ArgType::String, "compose: project name (docker compose -p)"),
        opt("compose_command", ArgType::String,
            "compose: \"docker compose\" (v2, the docker CLI plugin) or \"docker-compose\" (v1, Debian 12's); "
            "default: v2 when the docker CLI has the compose plugin, else docker-compose when it is on PATH")};
    e.returns = "the definition with defaults filled in: { name, backend, pidfile, log, ... }";
    e.results = {{"name", "string", ""}, {"backend", "string", ""}, {"argv", "list", ""}, {"cwd", "string", ""}, {"env", "map", ""}, {"log", "string", ""}, {"pidfile", "string", ""}, {"health", "string", ""}, {"stop_timeout", "string", ""}, {"start_timeout", "string", ""}, {"settle", "string", ""}, {"unit", "string", ""}, {"program", "string", ""}, {"app", "string", ""}, {"compose_service", "string", ""}, {"compose_command", "list", ""}, {"project", "string", ""}, {"config", "string", ""}, {"serverurl", "string", ""}, {"port", "integer", ""}, {"cmdline", "string", ""}, {"_ms", "list", "exact durations (internal)"}};
    e.describe = [](const Args& a) {
      return "define service " + a.str("name") + " (" + a.str("backend") + ")";
    };
    e.secrets_of = env_secrets;
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      ServiceDef d = parse_def(a);
      json& all = ctx.state("service");
      json def = d.to_json();
      if (all.contains(d.name) && all[d.name] != def) ctx.note("service " + d.name + " redefined");
      all[d.name] = def;
      def.erase("_ms");
      return def;
    };
    e.planned = [](const Args& a, const json&) -> json {
      json def = parse_def(a).to_json();
      def.erase("_ms");
      return def;
    };
    r.add(std::move(e));
  }
  add_verb(r, Verb::Start);
  add_verb(r, Verb::Stop);
  add_verb(r, Verb::Restart);
  {
    Effect e;
    e.name = "service.status";
    e.summary = "Whether a defined service runs, with its pid and start time (a probe)";
    e.kind = Kind::Probe;
    e.args = name_args();
    e.positional = {"name"};
    e.returns = "{ name, backend, state = \"running\"|\"stopped\"|\"starting\"|\"partial\" (pm2 app = \"all\": some online), pid, since, detail, stale, adopted (process: found by port/cmdline, not its pidfile), port }";
    e.results = {{"name", "string", "the service"}, {"backend", "string", "its backend"}, {"state", "string", "\"running\", \"stopped\", \"starting\" or \"partial\""}, {"pid", "integer", "the pid, or nil"}, {"since", "string", "when it started"}, {"detail", "string", "the backend's words"}, {"stale", "boolean", "a pidfile names a dead process"}, {"adopted", "boolean", "process: found by port/cmdline, not its pidfile"}, {"port", "integer", "its port"}};
    e.describe = [](const Args& a) { return "status of service " + a.str("name"); };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      ServiceDef d = lookup(ctx, a);
      return base_result(d, make_backend(d.backend)->status(ctx, d));
    };
    e.planned = [](const Args& a, const json&) {
      return json{{"name", a.str("name")}, {"state", "running"}, {"pid", nullptr}};
    };
    e.predicted = predicted_status;
    r.add(std::move(e));
  }
  register_proc(r);
}

}  // namespace rb
