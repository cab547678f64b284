// redis.*: a Redis server through hiredis, in-process. Connecting and the commands are bounded
// together by the call's timeout and the step's deadline (a total, not per read), so a dead or
// trickling server is a prompt failure (or false, for ping), never a hang. Pattern deletes and counts walk
// with SCAN, never KEYS (which blocks a production server); flushing a database needs
// confirm = true or --yes.
#include <fnmatch.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <unordered_set>

#include "core/hash.h"
#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/redis_conn.h"
#include "effects/util.h"

namespace rb {
namespace {
using redis::Conn;
using redis::Reply;

std::vector<ArgSpec> conn_args(const std::string& timeout = "5s") {
  return {req("url", ArgType::Url, "redis://[[user]:password@]host:port/db (the password is a secret)"),
          secret(opt("password", ArgType::String, "instead of the one in url (from an env var, say)")),
          opt("timeout", ArgType::Duration,
              "for connecting and the command together, however slowly the server answers; a SCAN "
              "walk gets it per page (never past the step's deadline)",
              timeout)};
}

std::vector<std::string> secrets(const Args& a) {
  auto out = redis::url_secrets(a.str("url"));
  if (a.has("password")) out.push_back(a.str("password"));
  return out;
}

redis::Url url_of(const Args& a) {
  try {
    redis::Url u = redis::parse_url(a.str("url"));
    if (a.has("password")) u.password = a.str("password");
    return u;
  } catch (const std::invalid_argument& e) {
    throw ArgError("bad argument 'url' to '" + a.effect() + "' (" + e.what() + ")");
  }
}

std::unique_ptr<Conn> connect(EffectContext& ctx, const Args& a, std::optional<int> db = {}) {
  redis::Url u = url_of(a);
  if (db) u.db = *db;
  return std::make_unique<Conn>(ctx, u, a.duration("timeout"));
}

// Before each command of a long walk: Ctrl-C and the deadline are honoured between commands,
// and each page gets the call's timeout anew (never past the step's deadline).
void next_command(EffectContext& ctx, Conn& c, const Args& a) {
  ctx.check_interrupt();
  c.set_timeout(a.duration("timeout"));
}

std::string shown_value(const std::string& v) { return json(truncate(v, 80)).dump(); }

// What a key holds now: { type = "none"|"string"|..., value = string or nil }.
json current(Conn& c, const std::string& key) {
  std::string type = redis::text_of(c.cmd({"TYPE", key}).get());
  json out{{"type", type}, {"value", nullptr}};
  if (type == "string") out["value"] = redis::text_of(c.cmd({"GET", key}).get());
  return out;
}

std::string current_text(const json& cur) {
  std::string type = cur["type"].get<std::string>();
  if (type == "none") return "(none)";
  if (type == "string") return shown_value(cur["value"].get<std::string>());
  return "(a " + type + ")";
}

// SCAN the keyspace for `pattern`, handing each page of keys to `each`.
template <typename F>
void scan(EffectContext& ctx, Conn& c, const Args& a, F&& each) {
  std::string cursor = "0";
  do {
    next_command(ctx, c, a);
    Reply r = c.cmd({"SCAN", cursor, "MATCH", a.str("pattern"), "COUNT", std::to_string(a.integer("batch"))});
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
      throw EffectError("redis " + c.url().where() + ": unexpected SCAN reply");
    cursor = std::string(r->element[0]->str, r->element[0]->len);
    std::vector<std::string> keys;
    for (size_t i = 0; i < r->element[1]->elements; ++i) {
      const redisReply* k = r->element[1]->element[i];
      keys.emplace_back(k->str, k->len);  // the raw bytes: they are sent back to delete
    }
    each(keys);
  } while (cursor != "0");
}

int64_t dbsize(Conn& c) { return c.cmd({"DBSIZE"})->integer; }

int64_t total(const json& keyspace) {
  int64_t n = 0;
  for (const auto& v : keyspace) n += v.get<int64_t>();
  return n;
}

std::string keyspace_text(const json& keyspace) {
  std::string out;
  for (auto it = keyspace.begin(); it != keyspace.end(); ++it)
    out += (out.empty() ? "" : ", ") + it.key() + "=" + it.value().dump();
  return out.empty() ? "empty" : out;
}

// What a flush would remove: { scope, db, keys_before, keyspace (all only), text }.
json flush_scope(EffectContext& ctx, const Args& a) {
  std::optional<int> db;
  if (a.has("db")) db = static_cast<int>(a.integer("db"));
  auto c = connect(ctx, a, db);
  const redis::Url& u = c->url();
  std::string host = u.host + ":" + std::to_string(u.port);
  if (a.boolean("all")) {
    json ks = redis::keyspace_counts(*c);
    return json{{"scope", "all"}, {"keys_before", total(ks)}, {"keyspace", ks},
                {"text", "FLUSHALL on " + host + ": removes " + std::to_string(total(ks)) +
                             " keys in every database (" + keyspace_text(ks) + ")"}};
  }
  int64_t n = dbsize(*c);
  return json{{"scope", "db"}, {"db", u.db}, {"keys_before", n},
              {"text", "FLUSHDB on " + u.where() + ": removes " + std::to_string(n) + " keys"}};
}

std::string refusal(const json& scope) {
  return "refused: " + scope["text"].get<std::string>() +
         "; pass confirm = true (or run with --yes) to flush";
}


// ---- dry-run predictions ------------------------------------------------------------------
// ctx.predictions()["redis"]["host:port/db"] = { flushed = bool, patterns = [deleted patterns],
// keys = { key = value | null } }: what the planned changes leave in that database. A key in
// `keys` was set (a string) or deleted (null) after the last flush and pattern delete covering
// it; a key not in it is gone when the db is flushed or a deleted pattern matches it, else it is
// as the server has it now. A planned FLUSHALL is ["redis"]["flushall"]["host:port"] = true.

// Redis glob patterns (*, ?, [...], \ escapes) as fnmatch(3) reads them without flags.
bool glob_match(const std::string& pattern, const std::string& key) {
  return ::fnmatch(pattern.c_str(), key.c_str(), 0) == 0;
}

std::string server_of(const redis::Url& u) { return u.host + ":" + std::to_string(u.port); }

redis::Url target_url(const Args& a) {
  redis::Url u = url_of(a);
  if (a.has("db")) u.db = static_cast<int>(a.integer("db"));
  return u;
}

// The prediction for the url's database, created when `create`; nullptr when no planned change
// touched it.
json* db_prediction(EffectContext& ctx, const redis::Url& u, bool create) {
  json& preds = ctx.predictions();
  if (!create && !preds.contains("redis")) return nullptr;
  json& all = preds["redis"];
  if (!all.is_object()) all = json::object();
  std::string where = u.where();
  if (all.contains(where)) return &all[where];
  bool flushed_all = all.contains("flushall") && all["flushall"].value(server_of(u), false);
  if (!create && !flushed_all) return nullptr;
  all[where] = json{{"flushed", flushed_all}, {"patterns", json::array()}, {"keys", json::object()}};
  return &all[where];
}

// What the planned changes make of one key: a string, json null (absent), or nothing said
// (std::nullopt: as the server has it).
std::optional<json> predicted_key(const json& p, const std::string& key) {
  auto it = p["keys"].find(key);
  if (it != p["keys"].end()) return *it;
  if (p.value("flushed", false)) return json(nullptr);
  for (const auto& pat : p["patterns"])
    if (glob_match(pat.get<std::string>(), key)) return json(nullptr);
  return std::nullopt;
}

// Whether every key matching `pattern` that the server has now is gone in the prediction.
bool live_keys_all_gone(const json& p, const std::string& pattern) {
  if (p.value("flushed", false)) return true;
  for (const auto& pat : p["patterns"])
    if (pat == pattern || pat == "*") return true;
  return false;
}

// The sha256 of the sorted key names (each ended by a NUL): a key set's fingerprint.
std::string key_digest(std::vector<std::string> keys) {
  std::sort(keys.begin(), keys.end());
  std::string acc;
  for (const auto& k : keys) acc.append(k).push_back('\0');
  return sha256_hex(acc);
}

// Every redis effect takes a url whose password must not reach the journal.
void add_redis(Registry& r, Effect e) {
  e.secrets_of = secrets;
  r.add(std::move(e));
}

}  // namespace

void register_redis(Registry& r) {
  {
    Effect e;
    e.name = "redis.ping";
    e.summary = "Whether a Redis server answers PING (false, promptly, when it does not)";
    e.args = conn_args("2s");
    e.positional = {"url"};
    e.returns = "true | false (the reason is noted)";
    e.describe = [](const Args& a) { return "ping " + a.str("url"); };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      try {
        auto c = connect(ctx, a);
        Reply rep = c->cmd({"PING"});
        return rep->type == REDIS_REPLY_STATUS && redis::text_of(rep.get()) == "PONG";
      } catch (const EffectError& err) {
        ctx.note(std::string("no PONG: ") + err.what());
        return false;
      }
    };
    e.planned = [](const Args&, const json&) -> json { return true; };
    add_redis(r, std::move(e));
  }
  {
    Effect e;
    e.name = "redis.info";
    e.summary = "INFO (or one section of it) as a table";
    e.args = conn_args();
    e.args.push_back(opt("section", ArgType::String, "server, clients, memory, stats, keyspace, ..."));
    e.positional = {"url", "section"};
    e.returns = "{ field = value }; numbers as numbers, keyspace lines as { keys, expires, avg_ttl }";
    e.results = {{"*", "map", "INFO field → value"}};
    e.describe = [](const Args& a) {
      return "read INFO" + (a.has("section") ? " " + a.str("section") : std::string()) + " of " + a.str("url");
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      std::vector<std::string> argv{"INFO"};
      if (a.has("section")) argv.push_back(a.str("section"));
      return redis::parse_info(redis::text_of(c->cmd(argv).get()));
    };
    e.planned = [](const Args&, const json&) { return json::object(); };
    add_redis(r, std::move(e));
  }
  {
    Effect e;
    e.name = "redis.get";
    e.summary = "The string value of a key";
    e.args = conn_args();
    e.args.insert(e.args.begin() + 1, req("key", ArgType::String, "the key"));
    e.positional = {"url", "key"};
    e.returns = "string, or nil when the key does not exist";
    e.describe = [](const Args& a) { return "get " + a.str("key") + " from " + a.str("url"); };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      Reply rep = c->cmd({"GET", a.str("key")});
      if (rep->type == REDIS_REPLY_NIL) return nullptr;
      return redis::text_of(rep.get());
    };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      json* p = db_prediction(ctx, url_of(a), false);
      if (!p) return nullptr;
      auto v = predicted_key(*p, a.str("key"));
      if (!v) return nullptr;
      return v->is_null() ? predicted_nil() : *v;
    };
    e.planned = [](const Args&, const json&) -> json { return nullptr; };
    add_redis(r, std::move(e));
  }
  {
    Effect e;
    e.name = "redis.count";
    e.summary = "How many keys match a pattern, counted with SCAN (never KEYS), page by page";
    e.args = conn_args();
    e.args.insert(e.args.begin() + 1, opt("pattern", ArgType::String, "glob-style, e.g. \"gemini:*\"", "*"));
    e.args.push_back(opt("batch", ArgType::Int, "keys per SCAN page", 500));
    e.positional = {"url", "pattern"};
    e.returns = "the number of matching keys (an integer); in a dry-run, after a planned set, del, delete_matching or flush of that database, the number they leave";
    e.describe = [](const Args& a) { return "count keys matching " + a.str("pattern") + " in " + a.str("url"); };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      if (a.str("pattern").empty()) throw ArgError("bad argument 'pattern' to 'redis.count' (empty)");
      if (a.integer("batch") < 1) throw ArgError("bad argument 'batch' to 'redis.count' (at least 1)");
      auto c = connect(ctx, a);
      std::unordered_set<std::string> seen;  // SCAN may return a key twice
      scan(ctx, *c, a, [&](const std::vector<std::string>& keys) { seen.insert(keys.begin(), keys.end()); });
      return static_cast<int64_t>(seen.size());
    };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      json* found = db_prediction(ctx, url_of(a), false);
      if (!found) return nullptr;
      if (a.str("pattern").empty()) throw ArgError("bad argument 'pattern' to 'redis.count' (empty)");
      if (a.integer("batch") < 1) throw ArgError("bad argument 'batch' to 'redis.count' (at least 1)");
      const json& p = *found;
      std::string pattern = a.str("pattern");
      int64_t n = 0;
      // The keys the plan sets and that match, plus the server's matching keys it leaves alone.
      for (auto it = p["keys"].begin(); it != p["keys"].end(); ++it)
        if (it.value().is_string() && glob_match(pattern, it.key())) ++n;
      if (!live_keys_all_gone(p, pattern)) {
        // The server's keys the plan leaves alone. When it cannot be read (an --offline
        // rehearsal, a server down now), the number is not known.
        try {
          auto c = connect(ctx, a);
          std::unordered_set<std::string> seen;
          scan(ctx, *c, a, [&](const std::vector<std::string>& keys) {
            for (const auto& k : keys)
              if (!predicted_key(p, k)) seen.insert(k);
          });
          n += static_cast<int64_t>(seen.size());
        } catch (const EffectError& err) {
          return unknown_value("redis.count after the planned changes to " + url_of(a).where() +
                               " (the server could not be read: " + err.what() + ")");
        }
      }
      return n;
    };
    e.planned = [](const Args&, const json&) -> json { return 0; };
    add_redis(r, std::move(e));
  }
  {
    Effect e;
    e.name = "redis.set";
    e.summary = "Set a key to a string value, optionally expiring";
    e.kind = Kind::Change;
    e.args = conn_args();
    e.args.insert(e.args.begin() + 1, req("key", ArgType::String, "the key"));
    e.args.insert(e.args.begin() + 2, req("value", ArgType::String, "the value (numbers become strings)"));
    e.args.push_back(opt("ttl", ArgType::Duration, "expire after this long (default: never)"));
    e.positional = {"url", "key", "value"};
    e.returns = "{ key, previous = the old string value or nil, previous_type }";
    e.results = {{"key", "string", "the key"}, {"previous", "string", "the old string value, or nil"}, {"previous_type", "string", "the old value's type"}};
    e.describe = [](const Args& a) {
      return "set " + a.str("key") + " in " + a.str("url") +
             (a.has("ttl") ? " for " + format_duration(a.duration("ttl")) : "");
    };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      json cur = current(*c, a.str("key"));
      std::string text = a.str("key") + ": " + current_text(cur) + " → " + shown_value(a.str("value")) +
                         (a.has("ttl") ? ", expiring in " + format_duration(a.duration("ttl")) : "");
      return json{{"text", text}, {"previous", cur["value"]}, {"previous_type", cur["type"]}};
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      json cur = current(*c, a.str("key"));
      std::vector<std::string> argv{"SET", a.str("key"), a.str("value")};
      if (a.has("ttl")) {
        int64_t ms = a.duration("ttl").count();
        if (ms <= 0) throw ArgError("bad argument 'ttl' to 'redis.set' (a positive duration expected)");
        argv.insert(argv.end(), {"PX", std::to_string(ms)});
      }
      c->cmd(argv);
      return json{{"key", a.str("key")}, {"previous", cur["value"]}, {"previous_type", cur["type"]}};
    };
    e.planned = [](const Args& a, const json& pv) {
      json out{{"key", a.str("key")}, {"previous", nullptr}, {"previous_type", nullptr}};
      if (pv.is_object() && pv.contains("previous")) {
        out["previous"] = pv["previous"];
        out["previous_type"] = pv["previous_type"];
      }
      return out;
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      (*db_prediction(ctx, url_of(a), true))["keys"][a.str("key")] = a.str("value");
    };
    e.verify = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      Reply rep = c->try_cmd({"GET", a.str("key")});
      if (rep->type != REDIS_REPLY_STRING) return false;
      return std::string(rep->str, rep->len) == a.str("value");
    };
    add_redis(r, std::move(e));
  }
  {
    Effect e;
    e.name = "redis.del";
    e.summary = "Delete a key";
    e.kind = Kind::Change;
    e.args = conn_args();
    e.args.insert(e.args.begin() + 1, req("key", ArgType::String, "the key"));
    e.positional = {"url", "key"};
    e.returns = "{ deleted = 1 | 0 }";
    e.results = {{"deleted", "integer", "1 or 0"}};
    e.describe = [](const Args& a) { return "delete " + a.str("key") + " from " + a.str("url"); };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      json cur = current(*c, a.str("key"));
      bool exists = cur["type"] != "none";
      return json{{"text", exists ? "deletes " + a.str("key") + " " + current_text(cur)
                                  : a.str("key") + " does not exist: nothing to delete"},
                  {"exists", exists}};
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      return json{{"deleted", c->cmd({"DEL", a.str("key")})->integer}};
    };
    e.planned = [](const Args&, const json& pv) {
      return json{{"deleted", pv.is_object() && pv.value("exists", false) ? 1 : 0}};
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      (*db_prediction(ctx, url_of(a), true))["keys"][a.str("key")] = nullptr;
    };
    e.verify = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      return c->cmd({"EXISTS", a.str("key")})->integer == 0;
    };
    add_redis(r, std::move(e));
  }
  {
    Effect e;
    e.name = "redis.delete_matching";
    e.summary = "Delete the keys matching a pattern, walking with SCAN (never KEYS) and deleting in batches";
    e.kind = Kind::Change;
    e.args = conn_args();
    e.args.insert(e.args.begin() + 1, req("pattern", ArgType::String, "glob-style, e.g. \"gemini:*\""));
    e.args.push_back(opt("batch", ArgType::Int, "keys per SCAN page and per UNLINK", 500));
    e.positional = {"url", "pattern"};
    e.returns = "{ deleted = n, pattern, db }";
    e.results = {{"deleted", "integer", "keys deleted"}, {"pattern", "string", "the pattern"}, {"db", "integer", "the database"}};
    e.describe = [](const Args& a) { return "delete keys matching " + a.str("pattern") + " in " + a.str("url"); };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      std::unordered_set<std::string> seen;  // SCAN may return a key twice
      scan(ctx, *c, a, [&](const std::vector<std::string>& keys) { seen.insert(keys.begin(), keys.end()); });
      int64_t all = dbsize(*c);
      std::vector<std::string> keys(seen.begin(), seen.end());
      return json{{"text", "deletes " + std::to_string(seen.size()) + " of " + std::to_string(all) +
                               " keys in " + c->url().where() + " matching " + json(a.str("pattern")).dump()},
                  {"count", seen.size()},
                  {"basis", {{"count", seen.size()}, {"digest", key_digest(std::move(keys))}}}};
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      json& p = *db_prediction(ctx, url_of(a), true);
      std::string pattern = a.str("pattern");
      json keys = json::object();
      for (auto it = p["keys"].begin(); it != p["keys"].end(); ++it)
        if (!glob_match(pattern, it.key())) keys[it.key()] = it.value();
      p["keys"] = std::move(keys);
      if (std::find(p["patterns"].begin(), p["patterns"].end(), json(pattern)) == p["patterns"].end())
        p["patterns"].push_back(pattern);
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      if (a.str("pattern").empty()) throw ArgError("bad argument 'pattern' to 'redis.delete_matching' (empty)");
      if (a.integer("batch") < 1) throw ArgError("bad argument 'batch' to 'redis.delete_matching' (at least 1)");
      auto c = connect(ctx, a);
      int64_t deleted = 0;
      std::string verb = "UNLINK";  // frees memory in the background; DEL before Redis 4
      std::vector<std::string> pending;
      auto remove = [&] {
        if (pending.empty()) return;
        std::vector<std::string> argv{verb};
        argv.insert(argv.end(), pending.begin(), pending.end());
        next_command(ctx, *c, a);
        Reply rep = c->try_cmd(argv);
        if (rep->type == REDIS_REPLY_ERROR && verb == "UNLINK" &&
            std::string(rep->str, rep->len).find("unknown command") != std::string::npos) {
          verb = argv[0] = "DEL";
          rep = c->cmd(argv);
        } else if (rep->type == REDIS_REPLY_ERROR) {
          throw EffectError("redis " + c->url().where() + ": " + verb + " failed after " + std::to_string(deleted) +
                                " keys: " + redis::text_of(rep.get()),
                            json{{"deleted", deleted}});
        }
        deleted += rep->integer;  // keys SCAN returned twice count once: the second delete finds nothing
        pending.clear();
        ctx.progress("deleted " + std::to_string(deleted) + " keys matching " + a.str("pattern"));
      };
      try {
        scan(ctx, *c, a, [&](const std::vector<std::string>& keys) {
          pending.insert(pending.end(), keys.begin(), keys.end());
          if (static_cast<int64_t>(pending.size()) >= a.integer("batch")) remove();
        });
        remove();
      } catch (const EffectError& err) {
        throw EffectError(err.what(), json{{"deleted", deleted}});
      }
      return json{{"deleted", deleted}, {"pattern", a.str("pattern")}, {"db", c->url().db}};
    };
    e.planned = [](const Args& a, const json& pv) {
      return json{{"deleted", pv.is_object() ? pv.value("count", json(0)) : json(0)},
                  {"pattern", a.str("pattern")}, {"db", nullptr}};
    };
    e.verify = [](EffectContext& ctx, const Args& a) -> json {
      auto c = connect(ctx, a);
      bool any = false;
      scan(ctx, *c, a, [&](const std::vector<std::string>& keys) { any = any || !keys.empty(); });
      return !any;
    };
    add_redis(r, std::move(e));
  }
  {
    Effect e;
    e.name = "redis.flush";
    e.summary = "FLUSHDB of the url's database (or db), or FLUSHALL with all = true; needs confirm = true or --yes";
    e.kind = Kind::Change;
    e.args = conn_args();
    e.args.push_back(opt("db", ArgType::Int, "the database to flush (default: the url's)"));
    e.args.push_back(opt("all", ArgType::Bool, "FLUSHALL: every database of the server", false));
    e.args.push_back(opt("confirm", ArgType::Bool, "true: yes, flush (else the run needs --yes)", false));
    e.positional = {"url"};
    e.returns = "{ scope = \"db\"|\"all\", db, keys_before, keyspace = { db0 = n, ... } (all only) }";
    e.results = {{"scope", "string", "\"db\" or \"all\""}, {"db", "integer", "the database"}, {"keys_before", "integer", "keys before"}, {"keyspace", "map", "db0 → keys (all only)"}};
    e.describe = [](const Args& a) {
      if (a.boolean("all")) return "flush every database of " + a.str("url");
      return "flush " + (a.has("db") ? "db " + std::to_string(a.integer("db")) + " of " : std::string()) + a.str("url");
    };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      if (!a.boolean("confirm") && !ctx.assume_yes()) {
        // Refused live whatever the server holds: the dry-run fails here too.
        json scope;
        try {
          scope = flush_scope(ctx, a);
        } catch (const EffectError&) {
          redis::Url u = target_url(a);
          scope = json{{"text", a.boolean("all") ? "FLUSHALL on " + server_of(u) : "FLUSHDB on " + u.where()}};
        }
        throw WouldFail(refusal(scope));
      }
      return flush_scope(ctx, a);
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      json scope = flush_scope(ctx, a);
      std::string why = refusal(scope);
      scope.erase("text");
      if (!a.boolean("confirm") && !ctx.assume_yes()) throw EffectError(why, scope);
      std::optional<int> db;
      if (a.has("db")) db = static_cast<int>(a.integer("db"));
      auto c = connect(ctx, a, db);
      c->cmd({a.boolean("all") ? "FLUSHALL" : "FLUSHDB"});
      return scope;
    };
    e.planned = [](const Args& a, const json& pv) -> json {
      json out = pv.is_object() ? pv : json{{"scope", a.boolean("all") ? "all" : "db"}, {"keys_before", 0}};
      out.erase("text");
      return out;
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      redis::Url u = target_url(a);
      json fresh{{"flushed", true}, {"patterns", json::array()}, {"keys", json::object()}};
      if (!a.boolean("all")) {
        *db_prediction(ctx, u, true) = fresh;
        return;
      }
      json& all = ctx.predictions()["redis"];
      if (!all.is_object()) all = json::object();
      all["flushall"][server_of(u)] = true;
      std::string prefix = server_of(u) + "/";
      for (auto it = all.begin(); it != all.end(); ++it)
        if (it.key().rfind(prefix, 0) == 0) it.value() = fresh;
    };
    e.verify = [](EffectContext& ctx, const Args& a) -> json {
      json scope = flush_scope(ctx, a);
      return scope["keys_before"] == 0;
    };
    add_redis(r, std::move(e));
  }
}

}  // namespace rb
