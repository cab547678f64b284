#include "dispatch/redact.h"

#include <algorithm>
#include <cstring>
#include <functional>

namespace rb {
namespace {

constexpr unsigned kFilterBits = 1u << 16;

inline uint32_t load4(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline uint32_t filter_slot(uint32_t key) { return (key * 2654435761u) >> 16; }

}  // namespace

void Redactor::insert(std::string s) {
  store_.push_back(std::move(s));
  const std::string* p = &store_.back();
  known_.insert(*p);
  // Longest first, so a secret that contains another is replaced whole.
  auto at = std::upper_bound(order_.begin(), order_.end(), p,
                             [](const std::string* a, const std::string* b) { return a->size() > b->size(); });
  order_.insert(at, p);
  if (p->size() < 4) {
    short_.push_back(p);
    return;
  }
  if (filter_.empty()) filter_.assign(kFilterBits / 64, 0);
  uint32_t key = load4(p->data());
  uint32_t slot = filter_slot(key);
  filter_[slot / 64] |= uint64_t{1} << (slot % 64);
  auto& lengths = by_prefix_[key];
  auto at_len = std::lower_bound(lengths.begin(), lengths.end(), p->size(), std::greater<size_t>());
  if (at_len == lengths.end() || *at_len != p->size()) lengths.insert(at_len, p->size());
}

Redactor& Redactor::operator=(const Redactor& o) {
  if (this == &o) return *this;
  store_.clear();
  order_.clear();
  known_.clear();
  by_prefix_.clear();
  filter_.clear();
  short_.clear();
  for (const std::string& s : o.store_) insert(s);
  derived_ = o.derived_;
  derived_bytes_ = o.derived_bytes_;
  return *this;
}

void Redactor::add(const std::string& secret) {
  // An empty or one-character "secret" would redact everything; it protects nothing anyway.
  if (secret.size() < 2 || known_.count(secret)) return;
  insert(secret);
}

bool Redactor::add_derived(std::string_view value) {
  if (value.size() < kMinDerived || known_.count(value)) return true;
  if (derived_ >= kMaxDerived || derived_bytes_ + value.size() > kMaxDerivedBytes) return false;
  ++derived_;
  derived_bytes_ += value.size();
  insert(std::string(value));
  return true;
}

template <class F>
void Redactor::scan(std::string_view s, F&& hit) const {
  if (order_.empty()) return;
  if (order_.size() <= kNaiveUpTo) {
    for (const std::string* sec : order_)
      for (size_t pos = s.find(*sec); pos != std::string_view::npos; pos = s.find(*sec, pos + 1))
        if (!hit(pos, pos + sec->size())) return;
    return;
  }
  for (const std::string* sec : short_)
    for (size_t pos = s.find(*sec); pos != std::string_view::npos; pos = s.find(*sec, pos + 1))
      if (!hit(pos, pos + sec->size())) return;
  if (by_prefix_.empty() || s.size() < 4) return;
  const char* d = s.data();
  size_t n = s.size();
  for (size_t i = 0; i + 4 <= n; ++i) {
    uint32_t key = load4(d + i);
    uint32_t slot = filter_slot(key);
    if (!(filter_[slot / 64] & (uint64_t{1} << (slot % 64)))) continue;
    auto it = by_prefix_.find(key);
    if (it == by_prefix_.end()) continue;
    for (size_t len : it->second) {  // longest first: the first that is a secret covers the rest
      if (len <= n - i && known_.count(std::string_view(d + i, len))) {
        if (!hit(i, i + len)) return;
        break;
      }
    }
  }
}

bool Redactor::contains(std::string_view s) const {
  bool found = false;
  scan(s, [&](size_t, size_t) {
    found = true;
    return false;
  });
  return found;
}

std::vector<std::pair<size_t, size_t>> Redactor::covered(std::string_view s) const {
  std::vector<std::pair<size_t, size_t>> hits;
  scan(s, [&](size_t b, size_t e) {
    hits.emplace_back(b, e);
    return true;
  });
  if (hits.empty()) return hits;
  std::sort(hits.begin(), hits.end());
  std::vector<std::pair<size_t, size_t>> out;
  for (const auto& h : hits) {
    if (!out.empty() && h.first <= out.back().second)
      out.back().second = std::max(out.back().second, h.second);
    else
      out.push_back(h);
  }
  return out;
}

std::string Redactor::text(std::string s) const {
  if (order_.empty()) return s;
  if (order_.size() <= kNaiveUpTo) {
    for (const std::string* secret : order_) {
      size_t pos = 0;
      while ((pos = s.find(*secret, pos)) != std::string::npos) {
        s.replace(pos, secret->size(), "***");
        pos += 3;
      }
    }
    return s;
  }
  // Many secrets (derived ones multiply): one pass; every byte any secret covers is hidden,
  // each run of covered bytes becoming one "***".
  auto ranges = covered(s);
  if (ranges.empty()) return s;
  std::string out;
  out.reserve(s.size());
  size_t at = 0;
  for (const auto& [b, e] : ranges) {
    out.append(s, at, b - at);
    out += "***";
    at = e;
  }
  out.append(s, at, std::string::npos);
  return out;
}

json Redactor::value(const json& v) const {
  if (order_.empty()) return v;
  if (v.is_string()) return text(v.get<std::string>());
  if (v.is_array()) {
    json out = json::array();
    for (const auto& e : v) out.push_back(value(e));
    return out;
  }
  if (v.is_object()) {
    json out = json::object();
    for (auto it = v.begin(); it != v.end(); ++it) {
      std::string key = text(it.key());
      // Appending keeps a wide object linear; a key the redaction changed may now equal another.
      if (key == it.key())
        append_member(out, std::move(key), value(*it));
      else
        out[key] = value(*it);
    }
    return out;
  }
  return v;
}

}  // namespace rb
