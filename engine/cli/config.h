// config.toml: what people set once. $RUNBOOK_CONFIG, else $XDG_CONFIG_HOME/runbook/config.toml,
// else ~/.config/runbook/config.toml (RUNBOOK_CONFIG=none reads no file). Parsed with toml11
// (Debian's libtoml11-dev). Precedence, for every key: the command's flag, then the
// environment, then the file, then the default; `runbook config` shows the effective values and
// where each came from.
//
//   journal   = "~/incidents/journal.db"   # --journal, RUNBOOK_JOURNAL
//   artifacts = "/var/lib/runbook/artifacts"  # RUNBOOK_ARTIFACTS (default: beside the journal)
//   color     = "auto"                      # --no-color, NO_COLOR, RUNBOOK_COLOR: auto|always|never
//   wait_lock = "5m"                        # --wait-lock, RUNBOOK_WAIT_LOCK
//   [notify]                                # what notify.* use when a runbook leaves them out
//   webhook = "https://hooks.slack.com/services/…"   # RUNBOOK_NOTIFY_WEBHOOK
//   smtp    = "smtp://mail.internal:25"     # RUNBOOK_NOTIFY_SMTP
//   from    = "runbook@example.com"         # RUNBOOK_NOTIFY_FROM
//   to      = ["oncall@example.com"]        # RUNBOOK_NOTIFY_TO (comma-separated)
#pragma once
#include <map>
#include <string>
#include <vector>

namespace rb::cli {

struct Setting {
  std::string value;   // "" when unset
  std::string source;  // "default", "environment RUNBOOK_JOURNAL", "file PATH:LINE", "flag --journal"
  bool secret = false; // shown as its origin only (a webhook's path is its credential)
};

struct Config {
  std::string file;        // the file looked for ("" with RUNBOOK_CONFIG=none)
  bool file_read = false;  // it existed and was read
  std::vector<std::string> warnings;  // unknown keys, with the nearest known one
  std::map<std::string, Setting> values;  // every known key, in effect
};

// The known keys, in the order `runbook config` shows them.
const std::vector<std::string>& config_keys();

// Reads the file (bounded: 1 MiB, nesting 32) and the environment. A syntax error, a value of
// the wrong type or a bad value throws UsageError naming file:line and how to go on without it.
Config load_config();

// A flag given on the command line wins: records it as the value and its source.
void apply_flag(Config& c, const std::string& key, const std::string& value, const std::string& flag);

// Makes the values the process's settings (core/settings.h), for the effects and the engine.
void install_settings(const Config& c);

// `runbook config [--json]`.
int cmd_config(const Config& c, bool json);

}  // namespace rb::cli
