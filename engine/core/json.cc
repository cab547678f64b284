#include "core/json.h"

#include <memory>
#include <unordered_map>
#include <vector>

namespace rb {
namespace {

// nlohmann's own parser inserts each object key through ordered_map::operator[], a linear search
// of the keys so far, so a 1.5 MB object of 100,000 keys took 13 s to parse. This SAX handler
// builds the same value but appends members, looking duplicates up in a hash index (a repeated
// key replaces the earlier value, as nlohmann's parser does), and refuses nesting past
// kJsonMaxDepth before anything recurses.
class Builder {
 public:
  using string_t = json::string_t;
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using binary_t = json::binary_t;

  bool null() { return put(json(nullptr)); }
  bool boolean(bool v) { return put(json(v)); }
  bool number_integer(number_integer_t v) { return put(json(v)); }
  bool number_unsigned(number_unsigned_t v) { return put(json(v)); }
  bool number_float(number_float_t v, const string_t&) { return put(json(v)); }
  bool string(string_t& v) { return put(json(std::move(v))); }
  bool binary(binary_t& v) { return put(json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(string_t& k) {
    stack_.back().key = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    error_ = std::string("not valid JSON (") + e.what() + ")";
    return false;
  }

  json root;
  std::string error_;

 private:
  struct Frame {
    json* value;
    std::string key;  // the member being read, in an object
    std::unique_ptr<std::unordered_map<std::string, size_t>> index;  // keys → position
  };

  // Places v where the parser is and returns where it went (stable while it is the open one).
  json* place(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    Frame& f = stack_.back();
    if (f.value->is_array()) {
      auto& arr = f.value->get_ref<json::array_t&>();
      arr.push_back(std::move(v));
      return &arr.back();
    }
    auto& obj = f.value->get_ref<json::object_t&>();
    if (!f.index) f.index = std::make_unique<std::unordered_map<std::string, size_t>>();
    auto [it, fresh] = f.index->emplace(f.key, obj.size());
    if (!fresh) {
      auto& slot = (obj.begin() + static_cast<std::ptrdiff_t>(it->second))->second;
      slot = std::move(v);
      return &slot;
    }
    obj.emplace_back(std::move(f.key), std::move(v));
    return &obj.back().second;
  }
  bool put(json v) {
    place(std::move(v));
    return true;
  }
  bool open(json container) {
    if (stack_.size() >= static_cast<size_t>(kJsonMaxDepth)) {
      error_ = json_too_deep();
      return false;
    }
    json* at = place(std::move(container));
    stack_.push_back(Frame{at, {}, nullptr});
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  std::vector<Frame> stack_;
};

}  // namespace

json parse_json(std::string_view text, std::string* error) {
  Builder b;
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &b);
  } catch (const json::exception& e) {
    b.error_ = std::string("not valid JSON (") + e.what() + ")";
  }
  if (ok) return std::move(b.root);
  if (error) *error = b.error_.empty() ? "not valid JSON" : b.error_;
  return json(json::value_t::discarded);
}

}  // namespace rb
