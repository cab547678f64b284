// Backends that drive a service manager through its own command: systemctl, supervisorctl, pm2,
// docker compose. Always argv through run_process_checked (bounded, interruptible), never a shell.
// Each backend is: the command for a verb, and how to read the manager's status answer.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <memory>

#include "core/clock.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "effects/service_backend.h"
#include "effects/util.h"
#include "os/files.h"

namespace rb {
namespace {

class CliBackend : public ServiceBackend {
 public:
  void start(EffectContext& ctx, const ServiceDef& d, json& out) override {
    act(ctx, d, "start", d.start_timeout);
    after_start(ctx, d, out);
  }
  void stop(EffectContext& ctx, const ServiceDef& d, const ServiceStatus&, json& out) override {
    // The manager applies its own grace; ours bounds the command around it.
    act(ctx, d, "stop", d.stop_timeout + Millis(30'000));
  }
  void restart(EffectContext& ctx, const ServiceDef& d, const ServiceStatus&, json& out) override {
    act(ctx, d, "restart", d.start_timeout + d.stop_timeout);
    after_start(ctx, d, out);
  }

 protected:
  os::ProcessResult run(EffectContext& ctx, const ServiceDef& d, const std::vector<std::string>& argv,
                        Millis timeout, bool check) {
    os::ProcessSpec spec;
    std::unique_ptr<os::PrivateFile> priv;
    spec.argv = private_argv(d, argv, priv);
    spec.env = d.env;
    spec.cwd = d.cwd;
    spec.timeout = timeout;
    spec.detached = starts_own_daemon();
    return run_process_checked(ctx, spec, check, display_argv(argv));
  }
  // A manager whose credentials would be on argv moves them into a private file (`priv`, alive
  // for the run) and returns the argv that names it instead.
  virtual std::vector<std::string> private_argv(const ServiceDef&, const std::vector<std::string>& argv,
                                                std::unique_ptr<os::PrivateFile>&) const {
    return argv;
  }
  // A manager whose command starts the manager's daemon on first use (pm2): that daemon, and the
  // services under it, must outlive the command, so its leftovers are not stopped.
  virtual bool starts_own_daemon() const { return false; }
  // Runs the verb's command; a manager that reports failure on stdout with exit 0 is caught by
  // check_output.
  virtual void act(EffectContext& ctx, const ServiceDef& d, const std::string& verb, Millis timeout) {
    auto r = run(ctx, d, command(d, verb), timeout, true);
    check_output(d, verb, r);
  }
  virtual void check_output(const ServiceDef&, const std::string&, const os::ProcessResult&) {}

  void after_start(EffectContext& ctx, const ServiceDef& d, json& out) {
    if (d.health.empty()) return;
    out["waited"] = wait_service_healthy(ctx, d, nullptr, nullptr);
    out["healthy"] = true;
  }
};

// systemctl start|stop|restart UNIT; state from `systemctl is-active UNIT`, pid from MainPID.
class Systemd : public CliBackend {
 public:
  std::vector<std::string> command(const ServiceDef& d, const std::string& verb) const override {
    return {"systemctl", verb, d.unit};
  }
  ServiceStatus status(EffectContext& ctx, const ServiceDef& d) override {
    ServiceStatus s;
    auto r = run(ctx, d, command(d, "is-active"), Millis(15'000), false);
    std::string word = trim(r.stdout_text);
    s.detail = word.empty() ? trim(r.stderr_text) : word;
    if (r.code == 0 && (word == "active" || word == "reloading")) {
      s.state = "running";
      auto show = run(ctx, d, {"systemctl", "show", "--property=MainPID", "--value", d.unit}, Millis(15'000), false);
      if (show.code == 0) s.pid = std::atoi(trim(show.stdout_text).c_str());
    } else if (word == "activating") {
      s.state = "starting";
    } else if (word.empty() || (word != "inactive" && word != "failed" && word != "deactivating" &&
                                word != "unknown")) {
      throw EffectError("systemctl is-active " + d.unit + " exited " + std::to_string(r.code) + ": " +
                        tail_lines(r.stderr_text.empty() ? r.stdout_text : r.stderr_text));
    }
    return s;
  }
  // systemctl start/restart of a unit systemd has not loaded (no such unit file) or masked fails.
  std::string would_fail(EffectContext& ctx, const ServiceDef& d, const std::string& verb, const ServiceStatus&,
                         bool paths_may_appear) override {
    if (verb == "stop") return "";
    auto r = run(ctx, d, {"systemctl", "show", "--property=LoadState", "--value", d.unit}, Millis(15'000), false);
    std::string load = trim(r.stdout_text);
    if (r.code != 0) return "";
    if (load == "not-found" && !paths_may_appear) return "systemctl " + verb + " " + d.unit + ": no such unit (LoadState not-found)";
    if (load == "masked") return "systemctl " + verb + " " + d.unit + ": the unit is masked";
    return "";
  }
};

// supervisorctl [-c CONF] [-s URL] start|stop|restart|status PROGRAM.
class Supervisor : public CliBackend {
 public:
  std::vector<std::string> base(const ServiceDef& d) const {
    std::vector<std::string> a = {"supervisorctl"};
    if (!d.config.empty()) a.insert(a.end(), {"-c", d.config});
    if (!d.serverurl.empty()) a.insert(a.end(), {"-s", d.serverurl});
    return a;
  }
  std::vector<std::string> command(const ServiceDef& d, const std::string& verb) const override {
    auto a = base(d);
    a.insert(a.end(), {verb, d.program});
    return a;
  }
  // serverurl = "http://user:pw@host:9001": supervisorctl -s would put the password on argv
  // (and -u/-p too). It goes into a private 0600 config's [supervisorctl] section instead, which
  // then replaces config = for supervisorctl (that section is all supervisorctl reads of it).
  std::vector<std::string> private_argv(const ServiceDef& d, const std::vector<std::string>& argv,
                                        std::unique_ptr<os::PrivateFile>& priv) const override {
    std::string pw = url_password(d.serverurl);
    if (pw.empty()) return argv;
    auto scheme = d.serverurl.find("://");
    auto at = d.serverurl.find('@', scheme + 3);
    std::string userinfo = d.serverurl.substr(scheme + 3, at - scheme - 3);
    std::string user = userinfo.substr(0, userinfo.find(':'));
    std::string bare = d.serverurl.substr(0, scheme + 3) + d.serverurl.substr(at + 1);
    for (const std::string& v : {bare, user, pw})
      if (v.find_first_of("\r\n") != std::string::npos)
        throw EffectError("serverurl of service " + d.name + " holds a line break");
    // Supervisor's config expands %(name)s: a literal % is written %%.
    auto ini = [](const std::string& v) {
      std::string out;
      for (char c : v) out += c == '%' ? std::string("%%") : std::string(1, c);
      return out;
    };
    try {
      priv = std::make_unique<os::PrivateFile>(
          "runbook-supervisorctl-", "[supervisorctl]\nserverurl=" + ini(bare) + "\nusername=" +
                                        ini(user) + "\npassword=" + ini(pw) + "\n");
    } catch (const std::exception& e) {
      throw EffectError(std::string("cannot write supervisorctl's private config: ") + e.what());
    }
    std::vector<std::string> out = {argv.front(), "-c", priv->path()};
    for (size_t i = 1; i < argv.size(); ++i) {
      if ((argv[i] == "-c" || argv[i] == "-s") && i + 1 < argv.size()) {
        ++i;
        continue;
      }
      out.push_back(argv[i]);
    }
    return out;
  }
  ServiceStatus status(EffectContext& ctx, const ServiceDef& d) override {
    // status exits 3 for a program that is not running: the text decides, not the code.
    auto r = run(ctx, d, command(d, "status"), Millis(15'000), false);
    std::string text = r.stdout_text + r.stderr_text;
    ServiceStatus s;
    std::string shown = d.program.find(':') == std::string::npos ? d.program : d.program.substr(d.program.find(':') + 1);
    for (const auto& line : split(text, '\n')) {
      auto words = split(trim(line), ' ');
      words.erase(std::remove(words.begin(), words.end(), ""), words.end());
      if (words.size() < 2) continue;
      std::string who = words[0];
      if (who != d.program && who != shown && who.substr(who.find(':') + 1) != shown) continue;
      std::string st = words[1];
      s.detail = trim(line);
      if (st == "RUNNING") s.state = "running";
      else if (st == "STARTING" || st == "BACKOFF") s.state = "starting";
      else s.state = "stopped";
      auto at = line.find("pid ");
      if (at != std::string::npos) s.pid = std::atoi(line.c_str() + at + 4);
      return s;
    }
    if (text.find("no such process") != std::string::npos)
      throw ServiceMissing(display_argv(command(d, "status")) + ": supervisord has no program " + d.program +
                           " (" + tail_lines(text) + ")");
    throw EffectError(display_argv(command(d, "status")) + " exited " + std::to_string(r.code) + ": " +
                      tail_lines(text));
  }

 protected:
  void check_output(const ServiceDef& d, const std::string& verb, const os::ProcessResult& r) override {
    std::string text = r.stdout_text + r.stderr_text;
    if (text.find("ERROR") != std::string::npos && text.find("already started") == std::string::npos &&
        text.find("not running") == std::string::npos)
      throw EffectError(display_argv(command(d, verb)) + ": " + tail_lines(text));
  }
  void act(EffectContext& ctx, const ServiceDef& d, const std::string& verb, Millis timeout) override {
    auto r = run(ctx, d, command(d, verb), timeout, false);
    check_output(d, verb, r);
    if (r.code != 0)
      throw EffectError(display_argv(command(d, verb)) + " exited " + std::to_string(r.code) + ": " +
                        tail_lines(r.stdout_text + r.stderr_text));
  }
};

// pm2 start|stop|restart APP; state from `pm2 jlist`. An app pm2 does not know yet is started
// from the ecosystem file (config) or from argv. app = "all" is every app of the daemon (the
// seeds' `pm2 restart all`): running when every one is online, and the status lists them.
class Pm2 : public CliBackend {
 public:
  bool starts_own_daemon() const override { return true; }
  std::vector<std::string> command(const ServiceDef& d, const std::string& verb) const override {
    return {"pm2", verb, d.app};
  }
  ServiceStatus status(EffectContext& ctx, const ServiceDef& d) override {
    ServiceStatus s;
    if (d.app == "all") {
      json list = jlist(ctx, d);
      if (list.empty()) {
        s.detail = "pm2 has no apps";
        return s;
      }
      size_t online = 0;
      std::string each;
      for (const auto& app : list) {
        std::string st = app.contains("pm2_env") && app["pm2_env"].is_object() ? app["pm2_env"].value("status", "") : "";
        online += st == "online";
        each += (each.empty() ? "" : ", ") + app.value("name", std::string("?")) + " " + st;
      }
      s.detail = "pm2: " + each;
      // Some online: "partial", which a stop acts on and a start completes.
      if (online == list.size()) s.state = "running";
      else if (online > 0) s.state = "partial";
      return s;
    }
    json app = find_app(ctx, d);
    if (app.is_null()) {
      s.detail = "pm2 has no app named " + d.app;
      return s;
    }
    std::string st = app.contains("pm2_env") ? app["pm2_env"].value("status", "") : "";
    s.detail = "pm2: " + st;
    if (st == "online") s.state = "running";
    else if (st == "launching") s.state = "starting";
    if (s.state != "stopped" && app.contains("pid") && app["pid"].is_number_integer())
      s.pid = app["pid"].get<pid_t>();
    if (s.state == "running" && app["pm2_env"].contains("pm_uptime") && app["pm2_env"]["pm_uptime"].is_number())
      s.since = iso_utc(app["pm2_env"]["pm_uptime"].get<int64_t>());
    return s;
  }

  void start(EffectContext& ctx, const ServiceDef& d, json& out) override {
    std::vector<std::string> argv = command(d, "start");
    if (d.app == "all") {
      if (jlist(ctx, d).empty()) throw EffectError("pm2 has no apps: nothing for pm2 start all to start");
    } else if (find_app(ctx, d).is_null()) {
      if (!d.config.empty()) {
        argv = {"pm2", "start", d.config, "--only", d.app};
      } else if (!d.argv.empty()) {
        argv = {"pm2", "start", d.argv[0], "--name", d.app};
        if (!d.cwd.empty()) argv.insert(argv.end(), {"--cwd", d.cwd});
        if (d.argv.size() > 1) {
          argv.push_back("--");
          argv.insert(argv.end(), d.argv.begin() + 1, d.argv.end());
        }
      } else {
        throw EffectError("pm2 has no app named " + d.app + "; give service.define an argv or a config (ecosystem file)");
      }
    }
    run(ctx, d, argv, d.start_timeout, true);
    after_start(ctx, d, out);
  }

  // An app pm2 does not know: start needs an ecosystem file or an argv, and `pm2 restart APP`
  // fails (service.start starts it from the definition; restart does not).
  std::string would_fail(EffectContext&, const ServiceDef& d, const std::string& verb, const ServiceStatus& cur,
                         bool paths_may_appear) override {
    if (d.app == "all")
      return cur.detail == "pm2 has no apps" && verb != "stop" ? "pm2 has no apps: pm2 " + verb + " all would fail" : "";
    bool unknown_app = cur.detail == "pm2 has no app named " + d.app;  // from the world, not a plan
    if (!unknown_app || verb == "stop") return "";
    if (verb == "restart")
      return "pm2 has no app named " + d.app + ": pm2 restart " + d.app + " would fail (service.start starts it)";
    if (d.config.empty() && d.argv.empty())
      return "pm2 has no app named " + d.app + "; give service.define an argv or a config (ecosystem file)";
    std::error_code ec;
    if (!d.config.empty() && !paths_may_appear && !std::filesystem::is_regular_file(d.config, ec))
      return "pm2 has no app named " + d.app + " and its ecosystem file " + d.config + " does not exist";
    return "";
  }

 private:
  json find_app(EffectContext& ctx, const ServiceDef& d) {
    for (const auto& app : jlist(ctx, d))
      if (app.is_object() && app.value("name", "") == d.app) return app;
    return nullptr;
  }

  // The daemon's apps (objects only).
  json jlist(EffectContext& ctx, const ServiceDef& d) {
    auto r = run(ctx, d, {"pm2", "jlist"}, Millis(30'000), true);
    // pm2 may print a banner (spawning its daemon) before the JSON: take the array line.
    json list = parse_json(r.stdout_text);
    if (list.is_discarded())
      for (const auto& line : split(r.stdout_text, '\n')) {
        std::string t = trim(line);
        if (t.empty() || t[0] != '[') continue;
        list = parse_json(t);
        if (!list.is_discarded()) break;
      }
    if (list.is_discarded() || !list.is_array())
      throw EffectError("pm2 jlist did not print a JSON list: " + tail_lines(r.stdout_text));
    json out = json::array();
    for (auto& app : list)
      if (app.is_object()) out.push_back(std::move(app));
    return out;
  }
};

// The compose command this machine has: v2 is a plugin of the docker CLI (`docker compose`),
// found where the CLI looks for plugins; v1 is the `docker-compose` program (what Debian 12
// ships). Neither: v2, so that the error names `docker compose`. No process is run to find out.
std::string compose_command_of(const ServiceDef& d) {
  if (!d.compose_command.empty()) return d.compose_command;
  std::vector<std::string> dirs;
  if (const char* c = std::getenv("DOCKER_CONFIG"); c && *c) dirs.push_back(std::string(c) + "/cli-plugins");
  else if (const char* h = std::getenv("HOME"); h && *h) dirs.push_back(std::string(h) + "/.docker/cli-plugins");
  for (const char* p : {"/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
                        "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins"})
    dirs.push_back(p);
  if (!os::which("docker").empty())
    for (const auto& dir : dirs)
      if (::access((dir + "/docker-compose").c_str(), X_OK) == 0) return "docker compose";
  if (!os::which("docker-compose").empty()) return "docker-compose";
  return "docker compose";
}

bool has_no_such_service(const std::string& text) {
  std::string low = text;
  for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return low.find("no such service") != std::string::npos;
}

// docker compose (v2) or docker-compose (v1) [-f FILE] [-p PROJECT]:
//   start    up -d SERVICE  (creates the container anew when the image or the config changed)
//   stop     stop SERVICE
//   restart  up -d --force-recreate --no-deps SERVICE  (a plain `restart` keeps the old
//            container, its image and its environment: a rolled-back env file or image would
//            not take effect)
// State: v2 from `ps --format json SERVICE`; v1 (which has no --format) from `ps -q SERVICE`
// and `docker inspect` of those containers (their State only: their Config holds the env).
class Compose : public CliBackend {
 public:
  std::vector<std::string> base(const ServiceDef& d) const {
    std::vector<std::string> a = compose_command_of(d) == "docker-compose" ? std::vector<std::string>{"docker-compose"}
                                                                          : std::vector<std::string>{"docker", "compose"};
    if (!d.config.empty()) a.insert(a.end(), {"-f", d.config});
    if (!d.project.empty()) a.insert(a.end(), {"-p", d.project});
    return a;
  }
  bool v1(const ServiceDef& d) const { return compose_command_of(d) == "docker-compose"; }
  std::vector<std::string> command(const ServiceDef& d, const std::string& verb) const override {
    auto a = base(d);
    if (verb == "ps") {
      if (v1(d)) a.insert(a.end(), {"ps", "-q", d.compose_service});
      else a.insert(a.end(), {"ps", "--format", "json", d.compose_service});
    } else if (verb == "start") {
      a.insert(a.end(), {"up", "-d", d.compose_service});
    } else if (verb == "restart") {
      a.insert(a.end(), {"up", "-d", "--force-recreate", "--no-deps", d.compose_service});
    } else {
      a.insert(a.end(), {verb, d.compose_service});
    }
    return a;
  }
  // docker compose -f FILE fails at once when FILE does not exist.
  std::string unreachable(const ServiceDef& d) const override {
    std::string why = CliBackend::unreachable(d);
    std::error_code ec;
    if (why.empty() && !d.config.empty() && !std::filesystem::exists(d.config, ec))
      why = display_argv(command(d, "ps")) + ": the compose file " + d.config + " does not exist";
    return why;
  }
  ServiceStatus status(EffectContext& ctx, const ServiceDef& d) override {
    os::ProcessResult r;
    try {
      r = run(ctx, d, command(d, "ps"), Millis(30'000), true);
    } catch (const EffectError& e) {
      if (has_no_such_service(e.what())) throw ServiceMissing(e.what(), e.result());
      throw;
    }
    if (v1(d)) return status_v1(ctx, d, r);
    // Older compose prints one JSON array, newer one object per line.
    std::vector<json> rows;
    json all = parse_json(r.stdout_text);
    if (!all.is_discarded() && all.is_array()) {
      for (auto& x : all) rows.push_back(x);
    } else {
      for (const auto& line : split(r.stdout_text, '\n')) {
        json j = parse_json(trim(line));
        if (!j.is_discarded() && j.is_object()) rows.push_back(j);
      }
    }
    ServiceStatus s;
    s.detail = "no container";
    for (const auto& row : rows) {
      if (row.value("Service", d.compose_service) != d.compose_service) continue;
      std::string st = row.value("State", "");
      s.detail = row.value("Name", "") + ": " + row.value("Status", st);
      if (st == "running") {
        s.state = row.value("Health", "") == "starting" ? "starting" : "running";
        return s;
      }
      if (st == "restarting") s.state = "starting";
    }
    return s;
  }

 private:
  ServiceStatus status_v1(EffectContext& ctx, const ServiceDef& d, const os::ProcessResult& ps) {
    ServiceStatus s;
    s.detail = "no container";
    std::vector<std::string> argv = {"docker", "inspect", "--type", "container", "--format",
                                     "{{.Name}} {{json .State}}"};
    for (const auto& line : split(ps.stdout_text, '\n')) {
      std::string id = trim(line);
      bool hex = !id.empty() && id.size() <= 64 &&
                 std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
      if (hex && argv.size() < 6 + 64) argv.push_back(id);
    }
    if (argv.size() == 6) return s;
    // A container removed between the two commands is "No such object": the others still count.
    auto r = run(ctx, d, argv, Millis(30'000), false);
    bool any = false;
    for (const auto& line : split(r.stdout_text, '\n')) {
      auto sp = line.find(' ');
      if (sp == std::string::npos) continue;
      json st = parse_json(line.substr(sp + 1));
      if (st.is_discarded() || !st.is_object()) continue;
      any = true;
      std::string name = line.substr(0, sp);
      if (!name.empty() && name[0] == '/') name.erase(0, 1);
      std::string status = st.value("Status", "");
      std::string health = st.contains("Health") && st["Health"].is_object() ? st["Health"].value("Status", "") : "";
      s.detail = name + ": " + status + (health.empty() ? "" : " (" + health + ")");
      if (status == "running") {  // no pid: compose reports none (v2 neither)
        s.state = health == "starting" ? "starting" : "running";
        return s;
      }
      if (status == "restarting") s.state = "starting";
    }
    if (!any && r.code != 0 && r.stderr_text.find("No such") == std::string::npos)
      throw EffectError(display_argv(argv) + " exited " + std::to_string(r.code) + ": " + tail_lines(r.stderr_text));
    return s;
  }
};

}  // namespace

std::unique_ptr<ServiceBackend> make_cli_backend(const std::string& kind) {
  if (kind == "systemd") return std::make_unique<Systemd>();
  if (kind == "supervisor") return std::make_unique<Supervisor>();
  if (kind == "pm2") return std::make_unique<Pm2>();
  if (kind == "compose") return std::make_unique<Compose>();
  return nullptr;
}

}  // namespace rb
