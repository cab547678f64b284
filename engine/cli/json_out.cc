#include "cli/json_out.h"

namespace rb::cli {

json typed(const std::string& type, const json& fields) {
  json out = json::object();
  append_member(out, "schema", kJsonSchema);
  append_member(out, "type", type);
  if (fields.is_object())
    for (auto it = fields.begin(); it != fields.end(); ++it)
      if (it.key() != "schema" && it.key() != "type") append_member(out, it.key(), it.value());
  return out;
}

json typed_event(const json& ev) {
  std::string type = ev.is_object() && ev.contains("event") && ev["event"].is_string() ? ev["event"].get<std::string>()
                     : ev.is_object() && ev.contains("type") && ev["type"].is_string() ? ev["type"].get<std::string>()
                                                                                       : "event";
  json out = json::object();
  append_member(out, "schema", kJsonSchema);
  append_member(out, "type", type);
  if (ev.is_object())
    for (auto it = ev.begin(); it != ev.end(); ++it)
      if (it.key() != "event" && it.key() != "schema" && it.key() != "type") append_member(out, it.key(), it.value());
  return out;
}

void print_event(const json& ev, std::FILE* out) {
  std::string line = typed_event(ev).dump(-1, ' ', false, json::error_handler_t::replace);
  std::fprintf(out, "%s\n", line.c_str());
  std::fflush(out);
}

void print_typed(const std::string& type, const json& fields, std::FILE* out) {
  std::string line = typed(type, fields).dump(-1, ' ', false, json::error_handler_t::replace);
  std::fprintf(out, "%s\n", line.c_str());
  std::fflush(out);
}

}  // namespace rb::cli
