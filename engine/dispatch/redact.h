// Secrets never reach a log line, the journal or a report. Redaction is by value: every string
// the dispatcher records or shows has each secret's text replaced by "***", so a secret that was
// built into a header ("Bearer " .. token) or a URL is caught too.
#pragma once
#include <string>
#include <vector>

#include "core/json.h"

namespace rb {

class Redactor {
 public:
  void add(const std::string& secret);
  bool empty() const { return secrets_.empty(); }
  std::string text(std::string s) const;
  json value(const json& v) const;

 private:
  std::vector<std::string> secrets_;
};

}  // namespace rb
