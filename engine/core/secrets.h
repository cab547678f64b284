// Finding secrets written inside ordinary text, so that they can be registered for redaction:
// the password of a URL's userinfo, `password=` in a key=value DSN, values whose names say they
// are secrets. Used by the run's parameters, service environments and secret file content.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace rb {

// The password in scheme://user:PASSWORD@host/..., or "" when there is none.
std::string url_password(std::string_view v);
// The URL password and every `password=VALUE` (key=value DSNs) in a value.
std::vector<std::string> embedded_secrets(std::string_view v);
// v with every embedded secret (above) replaced by "***": the form a journal keeps of it.
std::string mask_embedded(std::string_view v);
// Whether v holds a password that was masked ("scheme://u:***@host", "password=***"): a value
// read back from the journal that cannot be acted on.
bool holds_masked_password(std::string_view v);
// Whether a variable or key name says its value is a secret (DB_PASSWORD, API_TOKEN, ...).
bool secret_name(std::string_view name);

}  // namespace rb
