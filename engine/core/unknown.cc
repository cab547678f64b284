#include "core/unknown.h"

#include <atomic>
#include <vector>

namespace rb {

namespace {
std::atomic<uint64_t> g_unknowns{0};
}

uint64_t unknowns_made() { return g_unknowns.load(std::memory_order_relaxed); }

json unknown_value(const std::string& why) {
  g_unknowns.fetch_add(1, std::memory_order_relaxed);
  json v = json::object();
  v[kUnknownKey] = why;
  return v;
}

bool is_unknown(const json& v) {
  if (!v.is_object() || v.size() != 1) return false;
  auto it = v.find(kUnknownKey);
  return it != v.end() && it->is_string();
}

std::string unknown_why(const json& v) {
  return is_unknown(v) ? v.begin()->get<std::string>() : std::string();
}

namespace {

// Iterative: a value's depth is bounded where it is parsed, but nothing here relies on it.
template <typename Visit>
void walk(const json& root, Visit&& visit) {
  std::vector<const json*> todo{&root};
  while (!todo.empty()) {
    const json* v = todo.back();
    todo.pop_back();
    if (!visit(*v)) return;
    if (v->is_object() && !is_unknown(*v)) {
      for (auto it = v->begin(); it != v->end(); ++it) todo.push_back(&*it);
    } else if (v->is_array()) {
      for (const auto& x : *v) todo.push_back(&x);
    }
  }
}

}  // namespace

bool contains_unknown(const json& v) {
  bool found = false;
  walk(v, [&](const json& x) {
    if (is_unknown(x)) found = true;
    return !found;
  });
  return found;
}

void unknown_reasons(const json& v, std::vector<std::string>* out, size_t max) {
  walk(v, [&](const json& x) {
    if (is_unknown(x)) {
      std::string why = unknown_why(x);
      bool seen = false;
      for (const auto& o : *out) seen = seen || o == why;
      if (!seen) out->push_back(why);
    }
    return out->size() < max;
  });
}

}  // namespace rb
