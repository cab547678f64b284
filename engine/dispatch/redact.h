// Secrets never reach a log line, the journal or a report. Redaction is by value: every string
// the dispatcher records or shows has each secret's text replaced by "***", so a secret that was
// built into a header ("Bearer " .. token) or a URL is caught too.
//
// Values the runbook derives from a secret by changing its bytes (upper, reverse, format("%q"),
// a spaced-out copy, ...) are registered as secrets too, by the sandbox's string functions
// (engine/lua/derive.h), through add_derived() and covered().
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/json.h"

namespace rb {

class Redactor {
 public:
  // Up to this many secrets, each is searched for on its own (memmem per secret: fastest for the
  // usual handful); beyond it one pass over the text looks up every 4-byte window in an index
  // of the secrets' first 4 bytes, so the cost per text stays linear in its length.
  static constexpr size_t kNaiveUpTo = 4;
  // Derived values registered at most (and their bytes): past that the runbook is refused at the
  // derivation (add_derived returns false) rather than a secret leaking or redaction slowing
  // every line down.
  static constexpr size_t kMaxDerived = 20000;
  static constexpr size_t kMaxDerivedBytes = 64u << 20;
  // A derived value shorter than this is not registered: it would redact everything.
  static constexpr size_t kMinDerived = 4;

  Redactor() = default;
  // The index points into store_: a copy rebuilds it (and there is no cheaper move).
  Redactor(const Redactor& o) { *this = o; }
  Redactor& operator=(const Redactor& o);

  void add(const std::string& secret);
  // Registers a value derived from a secret (>= kMinDerived bytes; shorter ones are ignored and
  // count as registered). False when the limits above are reached.
  bool add_derived(std::string_view value);
  bool empty() const { return order_.empty(); }
  size_t size() const { return order_.size(); }
  size_t derived() const { return derived_; }
  // The longest secret's length: a secret overlapping [a, b) of a text lies inside
  // [a - longest + 1, b + longest - 1).
  size_t longest() const { return order_.empty() ? 0 : order_.front()->size(); }
  std::string text(std::string s) const;
  json value(const json& v) const;
  // Whether s holds a secret anywhere.
  bool contains(std::string_view s) const;
  // The byte ranges [begin, end) of s covered by occurrences of secrets, merged and in order.
  std::vector<std::pair<size_t, size_t>> covered(std::string_view s) const;

 private:
  void insert(std::string s);
  // Calls hit(begin, end) for every occurrence found; stops when hit returns false.
  template <class F>
  void scan(std::string_view s, F&& hit) const;

  std::deque<std::string> store_;              // stable addresses
  std::vector<const std::string*> order_;      // longest first
  std::unordered_set<std::string_view> known_;  // views into store_
  // The index of the fast path: for the first 4 bytes of the secrets of 4 bytes or more, the
  // lengths of those secrets (longest first; a window of each length is looked up in known_,
  // so secrets sharing a prefix, as derived ones do, cost a lookup per length, not a compare
  // each), a bit filter over those keys, and the shorter secrets.
  std::unordered_map<uint32_t, std::vector<size_t>> by_prefix_;
  std::vector<uint64_t> filter_;
  std::vector<const std::string*> short_;
  size_t derived_ = 0, derived_bytes_ = 0;
};

}  // namespace rb
