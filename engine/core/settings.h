// What the operator set once for every run (config.toml, engine/cli/config.cc) and an effect
// reads when a runbook leaves an argument out: the team's webhook, the mail relay. Set by the
// command line before a run starts; read-only afterwards.
#pragma once
#include <optional>
#include <string>

namespace rb {

void set_setting(const std::string& key, const std::string& value);
std::optional<std::string> setting(const std::string& key);
void clear_settings();

}  // namespace rb
