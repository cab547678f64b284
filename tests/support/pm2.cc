#include "support/pm2.h"

#include <gtest/gtest.h>

#include <chrono>

#include "core/json.h"
#include "os/process.h"
#include "support/support.h"

namespace rb::test {

Pm2Apps::Pm2Apps(const std::string& home, const std::string& ecosystem) : home_(home) {
  EXPECT_FALSE(rb::os::which("pm2").empty()) << "pm2 is missing: npm install -g pm2@5 (scripts/install-deps.sh)";
  std::string out = pm2({"start", ecosystem});
  EXPECT_NE(out.find("online"), std::string::npos) << out;
}

Pm2Apps::~Pm2Apps() { pm2({"kill"}); }

std::string Pm2Apps::pm2(const std::vector<std::string>& args) const {
  rb::os::ProcessSpec spec;
  spec.argv = {"pm2"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {{"PM2_HOME", home_}};
  spec.timeout = std::chrono::seconds(60);
  spec.detached = true;  // pm2's daemon outlives the command that spawns it
  auto r = rb::os::run_process(spec);
  return r.stdout_text + r.stderr_text;
}

std::map<std::string, Pm2App> Pm2Apps::apps() const {
  std::map<std::string, Pm2App> out;
  std::string text = pm2({"jlist"});
  size_t at = text.find('[');
  if (at == std::string::npos) return out;
  auto list = rb::json::parse(text.substr(at), nullptr, false);
  if (!list.is_array()) return out;
  for (const auto& a : list) {
    if (!a.is_object()) continue;
    Pm2App p;
    p.pid = a.value("pid", 0);
    if (a.contains("pm2_env") && a["pm2_env"].is_object()) {
      p.status = a["pm2_env"].value("status", "");
      p.restarts = a["pm2_env"].value("restart_time", 0);
    }
    out[a.value("name", "")] = p;
  }
  return out;
}

std::string pm2_ecosystem(const std::string& path, const std::vector<std::array<std::string, 4>>& apps) {
  rb::json list = rb::json::array();
  for (const auto& [name, script, args, cwd] : apps) {
    rb::json a = {{"name", name}, {"script", script}, {"cwd", cwd}, {"autorestart", false}};
    if (!args.empty()) a["args"] = args;
    if (script.size() > 3 && script.substr(script.size() - 3) == ".py") a["interpreter"] = "python3";
    if (script.find('/') == std::string::npos && script.find('.') == std::string::npos) a["interpreter"] = "none";
    list.push_back(a);
  }
  write_file(path, rb::json{{"apps", list}}.dump(2));
  return path;
}

}  // namespace rb::test
