// pg.*: PostgreSQL through libpq (ping, query, exec) and pg_dump/pg_restore (dump, restore).
// A query runs in a READ ONLY transaction, so it is safely a probe. The dsn's password is a
// secret: it is registered for redaction, goes to pg_dump/pg_restore through PGPASSWORD (never
// argv), and is scrubbed from libpq's messages.
#include <glob.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/clock.h"
#include "core/hash.h"
#include "core/strings.h"
#include "core/unknown.h"
#include "effects/effects.h"
#include "effects/pg_conn.h"
#include "effects/pg_sql.h"
#include "effects/util.h"
#include "os/files.h"

namespace rb {
namespace {
namespace stdfs = std::filesystem;

ArgSpec dsn_arg() {
  return opt("dsn", ArgType::String,
             "postgresql://user:password@host:port/db or \"host=... dbname=...\"; what it leaves "
             "out comes from PGHOST, PGUSER, PGPASSWORD... (the password is kept secret)",
             "");
}

pg::Dsn dsn_of(const Args& a) { return pg::parse_dsn(a.effect(), a.str_or("dsn", "")); }

std::vector<std::string> dsn_secrets(const Args& a) { return pg::secrets_in(a.str_or("dsn", "")); }

// For describe(), which gets the dsn with the password already replaced by "***".
std::string target_of(const Args& a) {
  try {
    return dsn_of(a).target();
  } catch (const std::exception&) {
    return "PostgreSQL";
  }
}

// The first keyword of a statement, upper-cased, past comments and parentheses.
std::string verb_of(const std::string& sql) {
  size_t i = 0;
  while (i < sql.size()) {
    if (std::isspace(static_cast<unsigned char>(sql[i])) || sql[i] == '(') {
      ++i;
    } else if (sql.compare(i, 2, "--") == 0) {
      i = sql.find('\n', i);
      if (i == std::string::npos) return "";
    } else if (sql.compare(i, 2, "/*") == 0) {
      i = sql.find("*/", i);
      if (i == std::string::npos) return "";
      i += 2;
    } else {
      break;
    }
  }
  std::string v;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i])))
    v += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
  return v;
}

std::string one_line_sql(const std::string& sql) {
  std::string out;
  for (char ch : sql) {
    bool space = std::isspace(static_cast<unsigned char>(ch));
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : ch;
  }
  return trim(out);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// ---- the database's size and tables --------------------------------------------------------

struct DbInfo {
  std::string name;
  int64_t size = 0, tables = 0;
};

DbInfo db_info(pg::Conn& c, Millis timeout) {
  auto r = c.exec(
      "SELECT current_database(), pg_database_size(current_database()), "
      "(SELECT count(*) FROM pg_catalog.pg_tables "
      " WHERE schemaname NOT IN ('pg_catalog', 'information_schema'))",
      {}, timeout);
  DbInfo d;
  d.name = PQgetvalue(r.get(), 0, 0);
  d.size = std::strtoll(PQgetvalue(r.get(), 0, 1), nullptr, 10);
  d.tables = std::strtoll(PQgetvalue(r.get(), 0, 2), nullptr, 10);
  return d;
}

// ---- pg_dump / pg_restore ------------------------------------------------------------------

// The newest server version's tools first: pg_dump must be at least as new as the server.
std::string find_tool(const Args& a, const std::string& tool) {
  if (a.has("bin")) {
    std::string p = a.str("bin") + "/" + tool;
    if (::access(p.c_str(), X_OK) == 0) return p;
    throw EffectError(tool + " not found in " + a.str("bin"));
  }
  glob_t g{};
  std::vector<std::string> found;
  if (::glob(("/usr/lib/postgresql/*/bin/" + tool).c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) found.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  auto version = [](const std::string& p) {
    return std::atoi(p.c_str() + std::string("/usr/lib/postgresql/").size());
  };
  std::sort(found.begin(), found.end(),
            [&](const std::string& x, const std::string& y) { return version(x) > version(y); });
  for (const auto& p : found)
    if (::access(p.c_str(), X_OK) == 0) return p;
  std::string p = os::which(tool);
  if (p.empty())
    throw EffectError(tool + " not found (install the PostgreSQL client tools, or pass bin = "
                      "\"/usr/lib/postgresql/<version>/bin\")");
  return p;
}

// How a spawned tool reaches the database: the settings on argv without the password, the
// password in its environment.
void connect_spawn(os::ProcessSpec& spec, const pg::Dsn& dsn, const std::string& dbname, Millis bound) {
  pg::Dsn d = dsn;
  if (!dbname.empty() && !d.params.count("dbname")) d.params["dbname"] = dbname;
  std::string conninfo = d.conninfo_without_password();
  if (!conninfo.empty()) spec.argv.push_back("--dbname=" + conninfo);
  spec.argv.push_back("--no-password");  // never wait for a prompt
  if (!d.password.empty()) spec.env["PGPASSWORD"] = d.password;
  spec.env["PGCONNECT_TIMEOUT"] = std::to_string(std::max<int64_t>(2, bound.count() / 1000));
  spec.timeout = bound;
}

struct DumpList {
  bool ok = false;
  std::string error;
  int64_t tables = 0;
  std::vector<std::string> names;  // SQL identifiers, schema-qualified and quoted ("public"."t")
};

std::string quote_ident(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// `pg_restore --list`: whether the dump is readable, and how many tables it holds.
DumpList list_dump(EffectContext& ctx, const Args& a, const std::string& file) {
  os::ProcessSpec spec;
  spec.argv = {find_tool(a, "pg_restore"), "--list", file};
  spec.timeout = Millis(120'000);
  auto r = run_process_checked(ctx, spec, false);
  DumpList out;
  out.ok = r.code == 0;
  if (!out.ok) {
    out.error = tail_lines(r.stderr_text);
    return out;
  }
  for (const auto& line : split(r.stdout_text, '\n')) {
    if (line.empty() || line[0] == ';') continue;
    // "215; 1259 16386 TABLE public projects app"
    auto t = split(line, ' ');
    if (t.size() > 4 && t[3] == "TABLE" && t[4] != "DATA") {
      ++out.tables;
      if (t.size() > 5 && out.names.size() < 1000) out.names.push_back(quote_ident(t[4]) + "." + quote_ident(t[5]));
    }
  }
  return out;
}

std::string format_letter(const Args& a) {
  std::string f = a.str("format");
  if (f == "custom") return "c";
  if (f == "plain") return "p";
  if (f == "tar") return "t";
  if (f == "directory") return "d";
  throw ArgError("bad argument 'format' to '" + a.effect() +
                 "' (custom, plain, tar or directory expected, got \"" + f + "\")");
}

std::string sha256_path(const std::string& path) {
  std::error_code ec;
  if (!stdfs::is_directory(path, ec)) return sha256_file(path);
  // A directory-format dump: the hash of its files' names and hashes, in name order.
  std::vector<std::string> files;
  for (auto& e : stdfs::recursive_directory_iterator(path, ec))
    if (e.is_regular_file()) files.push_back(stdfs::relative(e.path(), path).string());
  std::sort(files.begin(), files.end());
  std::string acc;
  for (const auto& f : files) acc += f + " " + sha256_file(path + "/" + f) + "\n";
  return sha256_hex(acc);
}

// pg_dump into a temp name beside `file`, verified readable, then renamed into place. What
// `file` held before is moved into the run's artifacts.
json dump_to(EffectContext& ctx, const Args& a, const pg::Dsn& dsn, const std::string& file,
             const std::string& letter, Millis timeout) {
  std::string path = abs_path(file);
  std::string tmp = os::unique_path(path + ".partial");
  os::ProcessSpec spec;
  spec.argv = {find_tool(a, "pg_dump"), "--format=" + letter, "--file=" + tmp};
  connect_spawn(spec, dsn, "", ctx.bound(timeout));
  auto cleanup = [&] {
    std::error_code ec;
    stdfs::remove_all(tmp, ec);
  };
  try {
    run_process_checked(ctx, spec, true, "pg_dump of " + dsn.target());
    int64_t tables = 0;
    if (letter == "p") {
      std::string text = os::read_file(tmp);
      if (text.find("-- PostgreSQL database dump complete") == std::string::npos)
        throw EffectError("the dump " + tmp + " is incomplete (no \"dump complete\" trailer)");
      size_t pos = 0;
      while ((pos = text.find("\nCREATE TABLE ", pos)) != std::string::npos) ++tables, ++pos;
    } else {
      DumpList l = list_dump(ctx, a, tmp);
      if (!l.ok) throw EffectError("pg_restore --list cannot read the new dump: " + l.error);
      tables = l.tables;
    }
    json previous = nullptr;
    if (exists(path)) {
      std::string rel = path.substr(1);
      previous = os::unique_path(ctx.artifact_dir() + "/replaced/" + rel);
      os::move_path(path, previous.get<std::string>());
    }
    os::move_path(tmp, path);
    uint64_t size = os::path_size(path);
    std::string sha = sha256_path(path);
    json out{{"path", path},       {"size", size},     {"sha256", sha},
             {"format", a.has("format") ? a.str("format") : "custom"},
             {"tables", tables},   {"database", dsn.target()}, {"previous", previous}};
    // The record of what was dumped, kept with the run even if the dump itself is moved.
    std::string manifest = os::unique_path(ctx.artifact_dir() + "/pg/" +
                                           stdfs::path(path).filename().string() + ".json");
    stdfs::create_directories(stdfs::path(manifest).parent_path());
    os::atomic_write(manifest, out.dump(2) + "\n");
    out["manifest"] = manifest;
    return out;
  } catch (const EffectError&) {
    cleanup();
    throw;
  } catch (const std::runtime_error& e) {
    cleanup();
    throw EffectError(e.what());
  } catch (...) {
    cleanup();
    throw;
  }
}

// ---- plain SQL dumps (psql) ------------------------------------------------------------------

constexpr size_t kMaxPlainDump = size_t(1) << 30;

struct PlainDump {
  std::string sql;
  std::vector<std::string> tables;  // as the dump names them: public.projects
  bool has_drops = false;           // made with pg_dump --clean
};

// Reads (and gunzips) a plain dump; refuses one pg_dump left unfinished.
PlainDump read_plain(const std::string& file) {
  PlainDump d;
  try {
    d.sql = pg::read_sql_file(file, kMaxPlainDump);
  } catch (const std::runtime_error& e) {
    throw EffectError(e.what());
  }
  if (d.sql.find("-- PostgreSQL database dump") != std::string::npos &&
      d.sql.find("-- PostgreSQL database dump complete") == std::string::npos)
    throw EffectError("the dump " + file + " is incomplete (pg_dump's \"dump complete\" trailer is missing: "
                      "it was cut short)");
  if (trim(d.sql).empty()) throw EffectError("the dump " + file + " holds no SQL");
  size_t pos = 0;
  while ((pos = d.sql.find("CREATE TABLE ", pos)) != std::string::npos) {
    bool line_start = pos == 0 || d.sql[pos - 1] == '\n';
    pos += 13;
    if (!line_start) continue;
    size_t e = d.sql.find_first_of(" (\n", pos);
    if (e == std::string::npos) break;
    if (d.tables.size() < 1000) d.tables.push_back(d.sql.substr(pos, e - pos));
  }
  d.has_drops = d.sql.find("\nDROP TABLE ") != std::string::npos;
  return d;
}

// clean = true for a plain dump made without --clean: the tables (and their dependants) it
// creates are dropped first, in the same transaction, so it can recreate them.
std::string plain_clean_prefix(const PlainDump& d) {
  if (d.has_drops) return "";
  std::string out;
  for (const auto& t : d.tables) out += "DROP TABLE IF EXISTS " + t + " CASCADE;\n";
  size_t pos = 0;
  while ((pos = d.sql.find("\nCREATE SEQUENCE ", pos)) != std::string::npos) {
    pos += 17;
    size_t e = d.sql.find_first_of(" \n;", pos);
    if (e == std::string::npos) break;
    out += "DROP SEQUENCE IF EXISTS " + d.sql.substr(pos, e - pos) + " CASCADE;\n";
  }
  pos = 0;
  while ((pos = d.sql.find("\nCREATE TYPE ", pos)) != std::string::npos) {
    pos += 13;
    size_t e = d.sql.find_first_of(" \n;", pos);
    if (e == std::string::npos) break;
    out += "DROP TYPE IF EXISTS " + d.sql.substr(pos, e - pos) + " CASCADE;\n";
  }
  return out;
}

// Row counts of the restored tables, for the log and the result (at most 50 tables).
json table_counts(EffectContext& ctx, const pg::Dsn& dsn, const std::string& dbname,
                  const std::vector<std::string>& tables, Millis timeout) {
  json out = json::object();
  if (tables.empty()) return out;
  pg::Dsn d = dsn;
  if (!d.params.count("dbname")) d.params["dbname"] = dbname;
  pg::Conn c(ctx, d, timeout);
  for (size_t i = 0; i < tables.size() && i < 50; ++i) {
    std::string error;
    auto r = c.run("SELECT count(*) FROM " + tables[i], {}, timeout, &error);
    std::string key = tables[i];
    key.erase(std::remove(key.begin(), key.end(), '"'), key.end());
    if (error.empty()) out[key] = pg::scalar_int(r.get());
    else out[key] = "error: " + error;
    if (!c.ok()) break;
  }
  return out;
}

std::vector<std::string> tables_arg(const Args& a) {
  std::vector<std::string> out;
  if (!a.has("tables")) return out;
  const json& t = a.at("tables");
  for (const auto& v : t) {
    if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 200)
      throw ArgError("bad argument 'tables' to '" + a.effect() + "' (a list of table names expected)");
    out.push_back(v.get<std::string>());
  }
  if (out.empty()) throw ArgError("bad argument 'tables' to '" + a.effect() + "' (an empty list)");
  return out;
}

// Every chosen table must be in the dump (pg_restore -t would silently restore nothing).
std::string missing_tables(const std::vector<std::string>& names, const std::vector<std::string>& tables) {
  std::vector<std::string> missing;
  for (const auto& t : tables) {
    auto dot = t.find('.');
    std::string want = dot == std::string::npos ? "." + quote_ident(t)
                                                : quote_ident(t.substr(0, dot)) + "." + quote_ident(t.substr(dot + 1));
    bool found = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
      return n == want || (want[0] == '.' && n.size() > want.size() &&
                           n.compare(n.size() - want.size(), want.size(), want) == 0);
    });
    if (!found) missing.push_back(t);
  }
  return join(missing, ", ");
}

void refuse_plain_tables(const Args& a, const std::string& file) {
  if (a.has("tables"))
    throw ArgError("bad argument 'tables' to '" + a.effect() + "' (" + file +
                   " is a plain SQL dump, which restores whole: psql cannot pick tables out of it; "
                   "use a custom-format dump (pg.dump's default) to restore chosen tables)");
}


// ---- dry-run predictions ------------------------------------------------------------------
// ctx.predictions()["pg"]["db"]["host:port/dbname"] = "pg.restore ..." (the last planned change
// to that database: its queries are unknown after it); ["pg"]["dumps"][<absolute path>] = true
// for the dumps the plan makes.

std::string db_key(const Args& a) {
  std::string t = dsn_of(a).target();
  auto at = t.find('@');
  return at == std::string::npos ? t : t.substr(at + 1);
}

json& pg_predictions(EffectContext& ctx) {
  json& p = ctx.predictions()["pg"];
  if (!p.is_object()) p = json::object();
  return p;
}

// ["pg"][section], or nullptr (reading never adds a key).
const json* pg_section(EffectContext& ctx, const std::string& section) {
  const json& all = ctx.predictions();
  auto it = all.find("pg");
  if (it == all.end() || !it->is_object()) return nullptr;
  auto s = it->find(section);
  return s != it->end() && s->is_object() ? &*s : nullptr;
}

// The planned change that makes this database's queries unpredictable, or "".
std::string changed_by(EffectContext& ctx, const Args& a) {
  const json* dbs = pg_section(ctx, "db");
  if (!dbs) return "";
  auto it = dbs->find(db_key(a));
  return it == dbs->end() ? "" : it->get<std::string>();
}

bool planned_dump(EffectContext& ctx, const std::string& file) {
  const json* dumps = pg_section(ctx, "dumps");
  return dumps && dumps->contains(file);
}

// Whether another module's planned change may create files (fs.copy of a dump).
bool other_planned_files(EffectContext& ctx) {
  const json& all = ctx.predictions();
  auto it = all.find("fs");
  return it != all.end() && it->is_object() && !it->empty();
}

// SQLSTATEs that say the statement itself is wrong as the database is now (syntax, a missing
// table or column, a bad value, a constraint), not that the server was busy or slow.
bool statement_fault(const std::string& state) {
  if (state.size() != 5) return false;
  std::string cls = state.substr(0, 2);
  return cls == "42" || cls == "22" || cls == "23" || cls == "2B" || cls == "0A";
}

// ---- exec's preview ------------------------------------------------------------------------

// pg.exec sends exactly one statement (the extended protocol refuses more): several are refused
// before anything runs, in the dry-run as in the live run, pointing at pg.script.
void one_statement(const Args& a) {
  size_t n = 0;
  try {
    n = pg::split_statements(a.str("sql"), 1000).size();
  } catch (const std::runtime_error&) {
    n = 1001;
  }
  if (n > 1)
    throw ArgError("bad argument 'sql' to '" + a.effect() + "' (" + std::to_string(n) +
                   " statements; pg.exec runs one: use pg.script{ dsn =, file = | sql = } for several, "
                   "in one transaction)");
}

json exec_preview(EffectContext& ctx, const Args& a) {
  one_statement(a);
  pg::Dsn dsn = dsn_of(a);
  std::string sql = a.str("sql");
  pg::Params params = pg::params_of(a);
  Millis timeout = a.duration("timeout");
  std::string verb = verb_of(sql);
  pg::Conn c(ctx, dsn, timeout);
  bool count = a.boolean("count", true) && (verb == "UPDATE" || verb == "DELETE") &&
               lower(sql).find("nextval") == std::string::npos;
  if (count) {
    // The statement itself, in a transaction that is always rolled back (and dropped with the
    // connection if anything goes wrong): an exact count, and an early sight of a failure.
    // Its row locks last only until the rollback; lock_timeout keeps it from queueing.
    c.exec("BEGIN", {}, timeout);
    c.exec("SET LOCAL lock_timeout = '2s'", {}, timeout);
    std::string error;
    auto r = c.run(sql, params, timeout, &error);
    if (c.ok()) {
      std::string ignored;
      c.run("ROLLBACK", {}, timeout, &ignored);
    }
    if (!error.empty()) {
      const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
      if (state && std::string(state) == "55P03")
        return json{{"text", "cannot count the rows: another transaction holds locks on them"},
                    {"error", error}};
      // What the live run would hit, unless an earlier planned change makes the database differ.
      if (state && statement_fault(state) && changed_by(ctx, a).empty()) throw WouldFail(error);
      return json{{"text", "would fail: " + error}, {"error", error}};
    }
    int64_t n = std::strtoll(PQcmdTuples(r.get()), nullptr, 10);
    std::string what = verb == "UPDATE" ? "update " : "delete ";
    return json{{"text", "would " + what + plural(n, "row", "rows") +
                             " (counted by running it in a transaction that was rolled back)"},
                {"affected", n},
                {"exact", true},
                {"basis", {{"rows", n}}}};
  }
  // Otherwise the planner's estimate: EXPLAIN plans the statement without running it.
  c.exec("BEGIN READ ONLY", {}, timeout);
  std::string error;
  auto r = c.run("EXPLAIN (FORMAT JSON) " + sql, params, timeout, &error);
  if (error.empty() && r && PQntuples(r.get()) == 1) {
    json plan = parse_json(PQgetvalue(r.get(), 0, 0));
    if (!plan.is_discarded() && plan.is_array() && !plan.empty() && plan[0].contains("Plan")) {
      json node = plan[0]["Plan"];
      // A ModifyTable node reports 0 rows; what it is fed is the estimate.
      if (node.value("Node Type", "") == "ModifyTable" && node.contains("Plans") &&
          !node["Plans"].empty())
        node = node["Plans"][0];
      int64_t n = static_cast<int64_t>(node.value("Plan Rows", 0.0));
      return json{{"text", "would run " + (verb.empty() ? std::string("the statement") : verb) +
                               " on about " + plural(n, "row", "rows") + " (the planner's estimate)"},
                  {"affected", n},
                  {"exact", false}};
    }
  }
  // Planning a DML statement fails as running it would (a syntax error, a missing table).
  const char* state = !error.empty() && r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  bool dml = verb == "INSERT" || verb == "UPDATE" || verb == "DELETE" || verb == "MERGE";
  if (dml && state && statement_fault(state) && changed_by(ctx, a).empty()) throw WouldFail(error);
  return json{{"text", "would run a " + (verb.empty() ? std::string("SQL") : verb) +
                           " statement on " + dsn.target() + " (no row estimate for it)"}};
}


// ---- pg.script -----------------------------------------------------------------------------

constexpr size_t kMaxScript = 64u << 20;

struct Script {
  std::string text;  // as sent: a BEGIN/COMMIT wrapping the whole script blanked out
  std::string origin;  // the file, or "sql"
  std::vector<pg::Statement> stmts;
};

Script script_of(const Args& a) {
  bool has_file = a.has("file"), has_sql = a.has("sql");
  if (has_file == has_sql)
    throw ArgError("bad arguments to '" + a.effect() + "' (exactly one of 'file' or 'sql' expected)");
  Script s;
  if (has_file) {
    s.origin = a.str("file");
    try {
      s.text = pg::read_sql_file(abs_path(s.origin), kMaxScript);
    } catch (const std::runtime_error& e) {
      throw EffectError(std::string("cannot read the script: ") + e.what());
    }
  } else {
    s.origin = "sql";
    s.text = a.str("sql");
    if (s.text.size() > kMaxScript) throw ArgError("bad argument 'sql' to '" + a.effect() + "' (larger than 64 MiB)");
  }
  try {
    s.stmts = pg::split_statements(s.text, 100000);
  } catch (const std::runtime_error& e) {
    throw ArgError("bad argument '" + std::string(has_file ? "file" : "sql") + "' to '" + a.effect() + "' (" + e.what() + ")");
  }
  auto word2 = [&](const pg::Statement& st) {
    std::string rest = lower(s.text.substr(st.begin + st.verb.size(), std::min<size_t>(40, st.end - st.begin - st.verb.size())));
    return trim(rest);
  };
  auto is_begin = [&](const pg::Statement& st) { return st.verb == "BEGIN" || (st.verb == "START" && word2(st).rfind("transaction", 0) == 0); };
  auto is_commit = [&](const pg::Statement& st) { return st.verb == "COMMIT" || st.verb == "END"; };
  // A migration file often wraps itself in BEGIN ... COMMIT: the wrapper is dropped (blanked,
  // so lines and positions stay) and pg.script's own transaction takes its place.
  if (s.stmts.size() >= 2 && is_begin(s.stmts.front()) && is_commit(s.stmts.back())) {
    for (const auto* st : {&s.stmts.front(), &s.stmts.back()})
      for (size_t i = st->begin; i < st->end; ++i)
        if (s.text[i] != '\n') s.text[i] = ' ';
    s.stmts.erase(s.stmts.begin());
    s.stmts.pop_back();
  }
  for (size_t i = 0; i < s.stmts.size(); ++i) {
    const auto& st = s.stmts[i];
    bool control = is_begin(st) || is_commit(st) || st.verb == "ABORT" ||
                   (st.verb == "ROLLBACK" && word2(st).rfind("to", 0) != 0) ||
                   (st.verb == "PREPARE" && word2(st).rfind("transaction", 0) == 0);
    if (control)
      throw ArgError("bad argument '" + std::string(has_file ? "file" : "sql") + "' to '" + a.effect() +
                     "' (statement " + std::to_string(i + 1) + " at line " + std::to_string(st.line) + " is " +
                     st.verb + ": pg.script runs the whole script in one transaction of its own; "
                     "remove the transaction control, or split the script)");
  }
  if (s.stmts.empty())
    throw ArgError("bad argument '" + std::string(has_file ? "file" : "sql") + "' to '" + a.effect() + "' (no SQL statements)");
  return s;
}

std::string statement_text(const Script& s, size_t i) {
  return truncate(one_line_sql(s.text.substr(s.stmts[i].begin, s.stmts[i].end - s.stmts[i].begin)), 100);
}

// Which statement a failure belongs to: by the server's error position, else the one after
// those that succeeded.
size_t failed_index(const Script& s, const PGresult* r, size_t succeeded) {
  const char* pos = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : nullptr;
  if (pos) {
    // 1-based character position; the text is treated as bytes (an approximation past UTF-8).
    size_t at = static_cast<size_t>(std::max(1L, std::strtol(pos, nullptr, 10)) - 1);
    for (size_t i = 0; i < s.stmts.size(); ++i)
      if (at < s.stmts[i].end + 1 || i + 1 == s.stmts.size()) return i;
  }
  return std::min(succeeded, s.stmts.size() - 1);
}

std::string failure_text(const Script& s, size_t i, const std::string& error) {
  return "statement " + std::to_string(i + 1) + " of " + std::to_string(s.stmts.size()) + " (" +
         (s.origin == "sql" ? std::string("line ") : s.origin + " line ") + std::to_string(s.stmts[i].line) +
         ": " + statement_text(s, i) + ") failed: " + error;
}

json statement_rows(const Script& s, const std::vector<pg::Conn::Done>& done) {
  json each = json::array();
  for (size_t i = 0; i < done.size(); ++i) {
    std::string cmd = done[i].command.substr(0, done[i].command.find(' '));
    each.push_back({{"n", i + 1},
                    {"line", i < s.stmts.size() ? s.stmts[i].line : 0},
                    {"command", cmd},
                    {"rows", done[i].rows}});
  }
  return each;
}

json script_preview(EffectContext& ctx, const Args& a) {
  Script s = script_of(a);
  size_t n = s.stmts.size();
  std::string head = plural(static_cast<int64_t>(n), "statement", "statements") + " from " + s.origin +
                     " in one transaction on " + target_of(a);
  if (!a.boolean("count", true))
    return json{{"text", "would run " + head + " (not tried: count = false)"}, {"statements", n}};
  Millis timeout = a.duration("timeout");
  Millis bound = std::min(timeout, a.duration("preview_timeout"));
  pg::Conn c(ctx, dsn_of(a), timeout);
  // The statements themselves, in a transaction that is always rolled back: the rows each
  // touches, and an early sight of a failure. Locks are held only until the rollback;
  // lock_timeout keeps the preview from queueing behind the application, statement_timeout
  // bounds each statement.
  c.exec("BEGIN", {}, timeout);
  c.exec("SET LOCAL lock_timeout = '2s'", {}, timeout);
  c.exec("SET LOCAL statement_timeout = " + std::to_string(std::max<int64_t>(1, bound.count())), {}, timeout);
  std::vector<pg::Conn::Done> done;
  std::string error;
  auto r = c.run_script(s.text, timeout, &done, &error);
  if (c.ok()) {
    std::string ignored;
    c.run("ROLLBACK", {}, timeout, &ignored);
  }
  json each = statement_rows(s, done);
  if (!error.empty()) {
    size_t i = failed_index(s, r.get(), done.size());
    std::string msg = failure_text(s, i, error);
    const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    std::string st = state ? state : "";
    if (st == "55P03")
      return json{{"text", "would run " + head + "; cannot try statement " + std::to_string(i + 1) +
                               ": another transaction holds locks it needs"},
                  {"statements", n}, {"each", each}, {"error", error}};
    if (st == "57014")
      return json{{"text", "would run " + head + "; statement " + std::to_string(i + 1) + " took longer than " +
                               format_duration(bound) + " in the preview and was cancelled"},
                  {"statements", n}, {"each", each}, {"error", error}};
    if (statement_fault(st) && changed_by(ctx, a).empty())
      throw WouldFail(msg + " (tried in a transaction that was rolled back; the live run changes nothing)");
    return json{{"text", "would fail: " + msg}, {"statements", n}, {"each", each}, {"error", error}};
  }
  int64_t total = 0;
  std::string parts;
  for (const auto& e : each) {
    total += e["rows"].get<int64_t>();
    if (parts.size() < 400)
      parts += (parts.empty() ? "" : "; ") + std::to_string(e["n"].get<int>()) + " " + e["command"].get<std::string>() +
               " " + plural(e["rows"].get<int64_t>(), "row", "rows");
  }
  return json{{"text", "would run " + head + ": " + parts + " (tried in a transaction that was rolled back)"},
              {"statements", n},
              {"each", each},
              {"affected", total},
              {"exact", true}};
}

json script_apply(EffectContext& ctx, const Args& a) {
  Script s = script_of(a);
  Millis timeout = a.duration("timeout");
  pg::Conn c(ctx, dsn_of(a), timeout);
  c.exec("BEGIN", {}, timeout);
  std::vector<pg::Conn::Done> done;
  std::string error;
  auto r = c.run_script(s.text, timeout, &done, &error);
  if (error.empty()) {
    auto cr = c.run("COMMIT", {}, timeout, &error);
    if (error.empty() && cr && std::string(PQcmdStatus(cr.get())) == "ROLLBACK")
      error = "the transaction was rolled back at COMMIT";
    if (!error.empty()) throw EffectError("COMMIT of " + s.origin + " failed: " + error + "; nothing was changed");
  } else {
    size_t i = failed_index(s, r.get(), done.size());
    json res = json::object();
    if (r)
      if (const char* st = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE)) res["sqlstate"] = st;
    res["statement"] = i + 1;
    res["line"] = s.stmts[i].line;
    if (c.ok()) {
      std::string ignored;
      c.run("ROLLBACK", {}, timeout, &ignored);
    }
    throw EffectError(failure_text(s, i, error) + "; the transaction was rolled back, nothing was changed", res);
  }
  json each = statement_rows(s, done);
  int64_t total = 0;
  for (const auto& e : each) total += e["rows"].get<int64_t>();
  return json{{"statements", s.stmts.size()}, {"each", each}, {"affected", total}};
}

}  // namespace

void register_pg(Registry& r) {
  {
    Effect e;
    e.name = "pg.ping";
    e.summary = "Whether PostgreSQL accepts a connection (and a query) with these settings";
    e.args = {dsn_arg(), opt("timeout", ArgType::Duration, "how long to try", "5s")};
    e.positional = {"dsn"};
    e.returns = "boolean; why not is logged";
    e.secrets_of = dsn_secrets;
    e.describe = [](const Args& a) { return "ping PostgreSQL at " + target_of(a); };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      std::string why;
      pg::Conn c(ctx, dsn_of(a), a.duration("timeout"), &why);
      if (c.ok()) {
        try {
          c.exec("SELECT 1", {}, a.duration("timeout"));
          return true;
        } catch (const EffectError& err) {
          why = err.what();
        }
      }
      ctx.note(why);
      return false;
    };
    e.planned = [](const Args&, const json&) -> json { return true; };
    r.add(std::move(e));
  }
  {
    Effect e;
    e.name = "pg.query";
    e.summary = "Rows of a query, run in a READ ONLY transaction (a probe: it cannot change data)";
    e.args = {dsn_arg(), req("sql", ArgType::String, "one statement; $1, $2... for params"),
              opt("params", ArgType::List, "values for $1, $2... (sent apart from the SQL)"),
              opt("timeout", ArgType::Duration, "the statement is cancelled after this", "60s")};
    e.positional = {"dsn", "sql"};
    e.returns = "list of rows { column = value }: numbers as numbers, booleans, NULL as nil, json decoded";
    e.secrets_of = dsn_secrets;
    e.describe = [](const Args& a) {
      return "query " + target_of(a) + ": " + truncate(one_line_sql(a.str("sql")), 120);
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      pg::Params params = pg::params_of(a);
      Millis timeout = a.duration("timeout");
      pg::Conn c(ctx, dsn_of(a), timeout);
      c.exec("BEGIN READ ONLY", {}, timeout);
      std::string error;
      auto res = c.run(a.str("sql"), params, timeout, &error);
      if (c.ok()) {
        std::string ignored;
        c.run("ROLLBACK", {}, timeout, &ignored);
      }
      if (!error.empty()) {
        json out = json::object();
        if (res)
          if (const char* s = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE)) out["sqlstate"] = s;
        throw EffectError(error, out);
      }
      return pg::rows_json(res.get());
    };
    e.predicted = [](EffectContext& ctx, const Args& a) -> json {
      std::string change = changed_by(ctx, a);
      if (change.empty()) return nullptr;
      return unknown_value("pg.query after " + change);
    };
    e.planned = [](const Args&, const json&) -> json { return json::array(); };
    r.add(std::move(e));
  }
  {
    Effect e;
    e.name = "pg.exec";
    e.summary = "Run one statement that changes data (UPDATE, DELETE, INSERT, DDL) with parameters. "
                "In a dry-run an UPDATE or DELETE really runs, inside a transaction that is always "
                "rolled back (lock_timeout 2s), to count its rows; other statements are only planned "
                "(EXPLAIN); count = false plans an UPDATE or DELETE too";
    e.kind = Kind::Change;
    e.args = {dsn_arg(), req("sql", ArgType::String, "one statement; $1, $2... for params"),
              opt("params", ArgType::List, "values for $1, $2... (sent apart from the SQL, never spliced in)"),
              opt("timeout", ArgType::Duration, "the statement is cancelled after this", "60s"),
              opt("count", ArgType::Bool,
                  "dry-run counts the rows an UPDATE or DELETE would touch by running it in a "
                  "transaction that is always rolled back; false: the planner's estimate only",
                  true)};
    e.positional = {"dsn", "sql"};
    e.returns = "{ affected = rows, command = \"UPDATE\", rows = RETURNING rows if any }";
    e.results = {{"affected", "integer", "rows affected"}, {"command", "string", "\"UPDATE\", \"DELETE\", ..."}, {"rows", "list", "RETURNING rows, if any"}};
    e.secrets_of = dsn_secrets;
    e.describe = [](const Args& a) {
      return "run on " + target_of(a) + ": " + truncate(one_line_sql(a.str("sql")), 120);
    };
    e.preview = exec_preview;
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      one_statement(a);
      pg::Params params = pg::params_of(a);
      Millis timeout = a.duration("timeout");
      pg::Conn c(ctx, dsn_of(a), timeout);
      auto res = c.exec(a.str("sql"), params, timeout);
      std::string status = PQcmdStatus(res.get());
      json out{{"affected", std::strtoll(PQcmdTuples(res.get()), nullptr, 10)},
               {"command", status.substr(0, status.find(' '))}};
      if (PQresultStatus(res.get()) == PGRES_TUPLES_OK) out["rows"] = pg::rows_json(res.get());
      return out;
    };
    e.planned = [](const Args& a, const json& pv) {
      int64_t n = pv.is_object() && pv.contains("affected") ? pv["affected"].get<int64_t>() : 0;
      return json{{"affected", n}, {"command", verb_of(a.str("sql"))}};
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      pg_predictions(ctx)["db"][db_key(a)] = "pg.exec on " + db_key(a) + ": " + truncate(one_line_sql(a.str("sql")), 80);
    };
    r.add(std::move(e));
  }
  {
    Effect e;
    e.name = "pg.script";
    e.summary = "Run several SQL statements (a migration file) in one transaction: all or nothing";
    e.kind = Kind::Change;
    e.args = {dsn_arg(),
              opt("file", ArgType::Path, "a .sql (or .sql.gz) file of statements separated by ';' (give file or sql)"),
              opt("sql", ArgType::String, "the statements themselves (give file or sql)"),
              opt("timeout", ArgType::Duration, "the whole script is cancelled (and rolled back) after this", "10m"),
              opt("count", ArgType::Bool,
                  "dry-run runs the script in a transaction that is always rolled back, to count the rows "
                  "each statement touches and see a failure early (sequences it advances stay advanced); "
                  "false: only count the statements", true),
              opt("preview_timeout", ArgType::Duration, "dry-run: statement_timeout for each statement", "30s")};
    e.positional = {"dsn", "file"};
    e.returns = "{ statements = n, affected = rows in all, each = { { n, line, command, rows } } }";
    e.results = {{"statements", "integer", "statements run"}, {"affected", "integer", "rows affected in all"}, {"each", "list", "{ n, line, command, rows } of each statement"}};
    e.secrets_of = dsn_secrets;
    e.describe = [](const Args& a) {
      return "run the statements of " + (a.has("file") ? a.str("file") : truncate(one_line_sql(a.str_or("sql", "")), 80)) +
             " on " + target_of(a) + " in one transaction";
    };
    e.preview = script_preview;
    e.apply = script_apply;
    e.planned = [](const Args&, const json& pv) {
      int64_t n = pv.is_object() && pv.contains("statements") ? pv["statements"].get<int64_t>() : 0;
      int64_t rows = pv.is_object() && pv.contains("affected") ? pv["affected"].get<int64_t>() : 0;
      return json{{"statements", n}, {"affected", rows}, {"each", pv.is_object() ? pv.value("each", json::array()) : json::array()}};
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      pg_predictions(ctx)["db"][db_key(a)] =
          "pg.script on " + db_key(a) + ": " + (a.has("file") ? a.str("file") : std::string("sql"));
    };
    r.add(std::move(e));
  }
  {
    Effect e;
    e.name = "pg.dump";
    e.summary = "pg_dump a database to a file, verified readable (pg_restore --list), with its size and SHA-256";
    e.kind = Kind::Change;
    e.args = {dsn_arg(), req("file", ArgType::Path, "where the dump goes (an existing file is kept in the run's artifacts)"),
              opt("format", ArgType::String, "custom, plain, tar or directory", "custom"),
              opt("timeout", ArgType::Duration, "pg_dump is stopped after this", "1h"),
              opt("bin", ArgType::Path, "directory of pg_dump/pg_restore (default: the newest /usr/lib/postgresql/*/bin, else PATH)")};
    e.positional = {"dsn", "file"};
    e.returns = "{ path, size, sha256, format, tables, database, manifest, previous }";
    e.results = {{"path", "string", "the dump file"}, {"size", "integer", "bytes"}, {"sha256", "string", "of the dump"}, {"format", "string", "custom or plain"}, {"tables", "map", "table → rows"}, {"database", "string", "the database"}, {"manifest", "string", "path of the manifest"}, {"previous", "string", "artifact path of a replaced file, or nil"}};
    e.secrets_of = dsn_secrets;
    e.describe = [](const Args& a) {
      return "dump " + target_of(a) + " to " + a.str("file") + " (" + a.str("format") + " format)";
    };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      format_letter(a);
      find_tool(a, "pg_dump");
      pg::Conn c(ctx, dsn_of(a), a.duration("timeout"));
      DbInfo d = db_info(c, a.duration("timeout"));
      std::string path = abs_path(a.str("file"));
      return json{{"text", "dumps database " + d.name + " (" + size_text(d.size) + ", " +
                               plural(d.tables, "table", "tables") + ") to " + path +
                               (exists(path) ? "; the existing file is kept in the run's artifacts" : "")},
                  {"database", d.name},
                  {"database_size", d.size},
                  {"tables", d.tables}};
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      std::string letter = format_letter(a);
      return dump_to(ctx, a, dsn_of(a), a.str("file"), letter, a.duration("timeout"));
    };
    e.planned = [](const Args& a, const json& pv) {
      return json{{"path", abs_path(a.str("file"))}, {"size", 0}, {"sha256", ""},
                  {"format", a.str("format")},
                  {"tables", pv.is_object() ? pv.value("tables", json(0)) : json(0)}};
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      pg_predictions(ctx)["dumps"][abs_path(a.str("file"))] = true;
    };
    e.verify = [](EffectContext& ctx, const Args& a) -> json {
      std::string path = abs_path(a.str("file"));
      if (!exists(path)) return false;
      if (a.str("format") == "plain") return nullptr;
      return list_dump(ctx, a, path).ok;
    };
    r.add(std::move(e));
  }
  {
    Effect e;
    e.name = "pg.restore";
    e.summary = "Restore a dump (custom, tar, directory, or plain .sql / .sql.gz) into a database, after dumping the current one into the run's artifacts";
    e.kind = Kind::Change;
    e.args = {dsn_arg(), req("file", ArgType::Path, "a custom, tar or directory dump (pg.dump), or a plain SQL dump (.sql, .sql.gz: restored with psql)"),
              opt("tables", ArgType::List, "restore only the rows of these tables (\"projects\" or \"public.projects\"), replacing theirs (pg_restore --data-only -t, in one transaction; custom, tar and directory dumps only)"),
              opt("clean", ArgType::Bool, "drop the dump's objects before recreating them (--clean --if-exists; for a plain dump made without --clean: its tables, sequences and types, CASCADE)", true),
              opt("backup", ArgType::Bool, "dump the current database into the run's artifacts first", true),
              opt("single_transaction", ArgType::Bool, "all or nothing: a failure leaves the database as it was", true),
              opt("no_owner", ArgType::Bool, "skip ownership (restoring as another role; custom dumps)", false),
              opt("timeout", ArgType::Duration, "for each of the backup and the restore", "1h"),
              opt("bin", ArgType::Path, "directory of pg_dump/pg_restore/psql (default: the newest /usr/lib/postgresql/*/bin, else PATH)")};
    e.positional = {"dsn", "file"};
    e.returns = "{ backup = path of the dump taken first (nil with backup = false), restored = file, format = \"custom\"|\"plain\", tables, counts = { table = rows after } }";
    e.results = {{"backup", "string", "path of the dump taken first (nil with backup = false)"}, {"restored", "string", "the file restored"}, {"format", "string", "custom or plain"}, {"tables", "list", "tables restored"}, {"counts", "map", "table → rows after"}};
    e.secrets_of = dsn_secrets;
    e.describe = [](const Args& a) {
      return "restore " + target_of(a) + " from " + a.str("file") +
             (a.has("tables") ? " (chosen tables)" : "") +
             (a.boolean("clean", true) ? " (clean)" : "") +
             (a.boolean("backup", true) ? ", backing up the current database first" : "");
    };
    e.preview = [](EffectContext& ctx, const Args& a) -> json {
      std::string file = abs_path(a.str("file"));
      std::vector<std::string> tables = tables_arg(a);
      if (planned_dump(ctx, file)) {
        // A dump the plan makes: it is not on disk yet (or not as it will be).
        pg::Conn c(ctx, dsn_of(a), a.duration("timeout"));
        DbInfo d = db_info(c, a.duration("timeout"));
        return json{{"text", "restores " + file + " (the dump the plan makes) into " + d.name},
                    {"database", d.name}, {"database_size", d.size}, {"database_tables", d.tables}};
      }
      if (!exists(file)) {
        if (other_planned_files(ctx))
          throw EffectError("the dump " + file + " does not exist (yet: a planned change may create it)");
        throw WouldFail("the dump " + file + " does not exist");
      }
      bool plain = pg::is_plain_sql_dump(file);
      int64_t dump_tables = 0;
      std::string kind;
      if (plain) {
        refuse_plain_tables(a, file);
        find_tool(a, "psql");
        PlainDump pd;
        try {
          pd = read_plain(file);
        } catch (const EffectError& err) {
          throw WouldFail(err.what());
        }
        dump_tables = static_cast<int64_t>(pd.tables.size());
        kind = "plain SQL dump, " + plural(static_cast<int64_t>(pg::split_statements(pd.sql, 10'000'000).size()),
                                           "statement", "statements") + ", restored with psql";
      } else {
        DumpList l = list_dump(ctx, a, file);
        if (!l.ok) throw WouldFail("pg_restore cannot read " + file + ": " + l.error);
        std::string missing = missing_tables(l.names, tables);
        if (!missing.empty()) throw WouldFail("the dump " + file + " has no table " + missing);
        dump_tables = l.tables;
        kind = "custom dump";
      }
      std::string sha;
      try {
        sha = sha256_path(file);
      } catch (const std::exception& err) {
        throw EffectError(err.what());
      }
      pg::Conn c(ctx, dsn_of(a), a.duration("timeout"));
      DbInfo d = db_info(c, a.duration("timeout"));
      uint64_t size = os::path_size(file);
      std::string text = "restores " + file + " (" + kind + ", " + size_text(size) + ", " +
                         plural(dump_tables, "table", "tables") + ") into " + d.name + " (" + size_text(d.size) +
                         ", " + plural(d.tables, "table", "tables") + " now)";
      if (!tables.empty()) text += "; only " + join(tables, ", ");
      if (a.boolean("clean", true)) text += "; drops the dump's objects first";
      if (a.boolean("backup", true)) text += "; backs up the current database first";
      return json{{"text", text},           {"dump_size", size},      {"dump_tables", dump_tables},
                  {"format", plain ? "plain" : "custom"},
                  {"database", d.name},     {"database_size", d.size}, {"database_tables", d.tables},
                  {"basis", {{"sha256", sha}}}};
    };
    e.predict = [](EffectContext& ctx, const Args& a, const json&, const json&) {
      pg_predictions(ctx)["db"][db_key(a)] = "pg.restore of " + db_key(a) + " from " + abs_path(a.str("file"));
    };
    e.apply = [](EffectContext& ctx, const Args& a) -> json {
      std::string file = abs_path(a.str("file"));
      std::vector<std::string> tables = tables_arg(a);
      if (!exists(file)) throw EffectError("the dump " + file + " does not exist");
      // Refuse before touching anything if the dump cannot be read (a truncated file).
      bool plain = pg::is_plain_sql_dump(file);
      DumpList l;
      PlainDump pd;
      if (plain) {
        refuse_plain_tables(a, file);
        pd = read_plain(file);
        l.ok = true;
        l.tables = static_cast<int64_t>(pd.tables.size());
        l.names = pd.tables;
      } else {
        l = list_dump(ctx, a, file);
        if (!l.ok) throw EffectError("pg_restore cannot read " + file + ": " + l.error);
        std::string missing = missing_tables(l.names, tables);
        if (!missing.empty()) throw EffectError("the dump " + file + " has no table " + missing + "; nothing was changed");
      }
      pg::Dsn dsn = dsn_of(a);
      Millis timeout = a.duration("timeout");
      std::string dbname;
      {
        pg::Conn c(ctx, dsn, timeout);
        dbname = PQdb(c.get());
      }
      json backup = nullptr;
      if (a.boolean("backup", true)) {
        std::string dest = ctx.artifact_dir() + "/pg/" + dbname + "-before-restore-" +
                           stamp_local(now_epoch_ms()) + ".dump";
        std::error_code ec;
        stdfs::create_directories(stdfs::path(dest).parent_path(), ec);
        pg::Dsn with_db = dsn;
        if (!with_db.params.count("dbname")) with_db.params["dbname"] = dbname;
        backup = dump_to(ctx, a, with_db, os::unique_path(dest), "c", timeout)["path"];
        ctx.note("backed up " + dsn.target() + " to " + backup.get<std::string>());
      }
      os::ProcessSpec spec;
      std::string label;
      if (plain) {
        // psql reads the SQL on stdin (gunzipped here); ON_ERROR_STOP makes the first error
        // fatal, --single-transaction rolls everything back with it. -X: no ~/.psqlrc.
        spec.argv = {find_tool(a, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"};
        if (a.boolean("single_transaction", true)) spec.argv.push_back("--single-transaction");
        connect_spawn(spec, dsn, dbname, ctx.bound(timeout));
        spec.argv.push_back("--file=-");
        std::string prefix = a.boolean("clean", true) ? plain_clean_prefix(pd) : "";
        spec.stdin_data = prefix + pd.sql;
        pd.sql.clear();
        label = "psql restore into " + dsn.target();
      } else if (!tables.empty()) {
        // Chosen tables: their rows (pg_restore --data-only -t, as SQL), replacing what the
        // tables hold now (TRUNCATE with clean = true), through psql in one transaction. Their
        // definitions stay as they are: dropping one would take its sequences with it.
        std::string sql_file = os::unique_path(ctx.artifact_dir() + "/pg/" + dbname + "-tables-" +
                                               stamp_local(now_epoch_ms()) + ".sql");
        std::error_code ec;
        stdfs::create_directories(stdfs::path(sql_file).parent_path(), ec);
        os::ProcessSpec extract;
        extract.argv = {find_tool(a, "pg_restore"), "--data-only", "--file=" + sql_file};
        for (const auto& t : tables) extract.argv.push_back("--table=" + t);
        extract.argv.push_back(file);
        extract.timeout = ctx.bound(timeout);
        run_process_checked(ctx, extract, true, "pg_restore --data-only of " + join(tables, ", "));
        std::string data;
        try {
          data = pg::read_sql_file(sql_file, kMaxPlainDump);
        } catch (const std::runtime_error& err) {
          throw EffectError(err.what());
        }
        if (data.find("COPY ") == std::string::npos && data.find("INSERT INTO ") == std::string::npos)
          throw EffectError("the dump " + file + " holds no rows for " + join(tables, ", ") +
                            " (pg_restore --list shows what it has)");
        std::string prefix;
        if (a.boolean("clean", true)) {
          std::vector<std::string> quoted;
          for (const auto& t : tables) {
            auto dot = t.find('.');
            quoted.push_back(dot == std::string::npos ? quote_ident(t)
                                                      : quote_ident(t.substr(0, dot)) + "." + quote_ident(t.substr(dot + 1)));
          }
          prefix = "TRUNCATE " + join(quoted, ", ") + ";\n";
        }
        spec.argv = {find_tool(a, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"};
        if (a.boolean("single_transaction", true)) spec.argv.push_back("--single-transaction");
        connect_spawn(spec, dsn, dbname, ctx.bound(timeout));
        spec.argv.push_back("--file=-");
        spec.stdin_data = prefix + data;
        label = "restore of " + join(tables, ", ") + " into " + dsn.target();
      } else {
        spec.argv = {find_tool(a, "pg_restore")};
        if (a.boolean("clean", true)) {
          spec.argv.push_back("--clean");
          spec.argv.push_back("--if-exists");
        }
        if (a.boolean("single_transaction", true)) spec.argv.push_back("--single-transaction");
        spec.argv.push_back("--exit-on-error");
        if (a.boolean("no_owner")) spec.argv.push_back("--no-owner");
        connect_spawn(spec, dsn, dbname, ctx.bound(timeout));
        spec.argv.push_back(file);
        label = "pg_restore into " + dsn.target();
      }
      try {
        run_process_checked(ctx, spec, true, label);
      } catch (EffectError& err) {
        json res = err.result();
        if (!res.is_object()) res = json::object();
        res["backup"] = backup;
        throw EffectError(std::string(err.what()) +
                              (backup.is_null() ? "" : " (the database before: " + backup.get<std::string>() + ")"),
                          res);
      }
      // Counts after: the rows now in what was restored.
      std::vector<std::string> counted;
      if (!tables.empty()) {
        for (const auto& t : tables) {
          auto dot = t.find('.');
          counted.push_back(dot == std::string::npos ? quote_ident(t)
                                                     : quote_ident(t.substr(0, dot)) + "." + quote_ident(t.substr(dot + 1)));
        }
      } else {
        counted = l.names;
      }
      json counts = table_counts(ctx, dsn, dbname, counted, timeout);
      for (auto it = counts.begin(); it != counts.end(); ++it)
        ctx.note(it.key() + ": " + (it->is_number() ? std::to_string(it->get<int64_t>()) + " rows" : it->get<std::string>()));
      return json{{"backup", backup}, {"restored", file}, {"format", plain ? "plain" : "custom"},
                  {"tables", tables.empty() ? l.tables : static_cast<int64_t>(tables.size())}, {"counts", counts}};
    };
    e.planned = [](const Args& a, const json& pv) {
      return json{{"backup", a.boolean("backup", true) ? json("(a dump in the run's artifacts)") : json(nullptr)},
                  {"restored", abs_path(a.str("file"))},
                  {"format", pv.is_object() ? pv.value("format", json("custom")) : json("custom")},
                  {"tables", pv.is_object() ? pv.value("dump_tables", json(0)) : json(0)},
                  {"counts", json::object()}};
    };
    r.add(std::move(e));
  }
}

}  // namespace rb
