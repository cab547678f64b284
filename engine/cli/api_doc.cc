#include "cli/api_doc.h"

#include <cctype>
#include <map>
#include <set>
#include <sstream>

#include "cli/api_globals.h"

namespace rb::cli {
namespace {

std::string signature(const Effect& e) {
  std::string s = e.name;
  if (!e.positional.empty()) {
    s += "(";
    for (size_t i = 0; i < e.positional.size(); ++i) s += (i ? ", " : "") + e.positional[i];
    s += ")";
  } else {
    s += "{ ... }";
  }
  return s;
}

std::string def_text(const ArgSpec& a) {
  if (a.def.is_null()) return "";
  return a.def.is_string() ? "\"" + a.def.get<std::string>() + "\"" : a.def.dump();
}

std::string cell(std::string s) {
  for (auto& c : s)
    if (c == '|') c = '/';
  return s;
}

std::string table_of(const std::string& name) {
  auto dot = name.find('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

// One item of the reference: a primitive or a documented global.
struct Item {
  const Effect* prim = nullptr;
  const DocEntry* doc = nullptr;
};

struct Section {
  std::string title;  // "fs", "Global functions"
  std::string intro;
  std::vector<Item> items;
  bool lua_std = false;  // a compact member list (Lua's standard library)
  bool modules = false;  // stdlib modules: items are module entries, then their functions
};

struct Model {
  std::vector<DocEntry> tables;  // primitive modules without a builtin entry
  std::vector<StdlibModule> mods;
  std::vector<DocEntry> stdlib;
  std::vector<Section> sections;
};

Model model(const Registry& r) {
  Model m;
  m.tables = primitive_table_docs(r);
  m.mods = stdlib_modules();
  m.stdlib = stdlib_docs(m.mods);
  const auto& b = builtin_docs();

  Section decl{"Declaring a runbook",
               "A runbook file declares itself with runbook{}, then its steps with step(); the top level "
               "runs once, to declare, and may not call primitives.",
               {}};
  Section globals{"Global functions", "Functions and values that are globals themselves.", {}};
  std::map<std::string, Section> tables;  // by table name
  Section lua{"Lua standard library (the allowed subset)",
              "Only these members exist; every other name of Lua's standard library is absent.",
              {}};
  lua.lua_std = true;
  Section absent{"Not in the sandbox",
                 "These do not exist for a runbook at all (reading a missing global is an error naming it).",
                 {}};
  std::set<std::string> lua_tables;
  for (const auto& e : b)
    if (e.kind == "table" && e.source == "lua") lua_tables.insert(e.name);

  auto table_section = [&](const std::string& t) -> Section& {
    auto& s = tables[t];
    s.title = t;
    return s;
  };
  for (const auto& e : b) {
    std::string t = table_of(e.name);
    if (e.kind == "absent") absent.items.push_back({nullptr, &e});
    else if (e.kind == "declaration" || e.name == "runbook" || e.name == "step") decl.items.push_back({nullptr, &e});
    else if (lua_tables.count(e.name) || lua_tables.count(t)) lua.items.push_back({nullptr, &e});
    else if (e.kind == "table") table_section(e.name).items.insert(table_section(e.name).items.begin(), {nullptr, &e});
    else if (t.empty()) globals.items.push_back({nullptr, &e});
    else table_section(t).items.push_back({nullptr, &e});
  }
  for (const auto& e : m.tables) table_section(e.name).items.insert(table_section(e.name).items.begin(), {nullptr, &e});
  // Primitives: after the table's own entry, before the Lua-side members.
  std::map<std::string, size_t> prim_at;
  for (const Effect* e : r.all()) {
    std::string t = table_of(e->name);
    if (t.empty()) {
      globals.items.insert(globals.items.begin() + static_cast<long>(prim_at[""]++), {e, nullptr});
      continue;
    }
    auto& s = table_section(t);
    s.items.insert(s.items.begin() + 1 + static_cast<long>(prim_at[t]++), {e, nullptr});
  }
  m.sections.push_back(std::move(decl));
  m.sections.push_back(std::move(globals));
  for (auto& [_, s] : tables) m.sections.push_back(std::move(s));
  m.sections.push_back(std::move(lua));
  m.sections.push_back(std::move(absent));
  Section mods{"Standard library modules",
               "Lua modules shipped in stdlib/, loaded with require; each documents itself (its __api "
               "table).",
               {}};
  mods.modules = true;
  for (const auto& e : m.stdlib) mods.items.push_back({nullptr, &e});
  m.sections.push_back(std::move(mods));
  return m;
}

json doc_json(const DocEntry& e) {
  json args = json::array();
  for (const auto& a : e.args)
    args.push_back({{"name", a.name}, {"type", a.type}, {"required", a.required},
                    {"default", a.def.empty() ? json(nullptr) : json(a.def)}, {"doc", a.doc}});
  json results = json::array();
  for (const auto& f : e.results) results.push_back({{"name", f.name}, {"type", f.type}, {"doc", f.doc}});
  json j{{"name", e.name}, {"kind", e.kind}, {"source", e.source}, {"summary", e.summary}};
  if (!e.call.empty()) j["call"] = e.call;
  if (e.kind == "function" || e.kind == "declaration") {
    j["args"] = args;
    j["returns"] = e.returns;
    j["results"] = results;
  }
  if (!e.type.empty()) j["type"] = e.type;
  if (!e.module.empty()) j["module"] = e.module;
  return j;
}

json prim_json(const Effect& e) {
  json args = json::array();
  for (const auto& a : e.args)
    args.push_back({{"name", a.name}, {"type", arg_type_name(a.type)}, {"required", a.required},
                    {"default", a.def}, {"secret", a.secret}, {"doc", a.doc}});
  json results = json::array();
  for (const auto& f : e.results) results.push_back({{"name", f.name}, {"type", f.type}, {"doc", f.doc}});
  return {{"name", e.name}, {"kind", kind_name(e.kind)}, {"source", "primitive"}, {"summary", e.summary},
          {"call", signature(e)}, {"positional", e.positional}, {"rest", e.rest}, {"args", args},
          {"returns", e.returns}, {"results", results}, {"preview", static_cast<bool>(e.preview)},
          {"checkable", e.checkable}};
}

void prim_text(std::ostream& o, const Effect& e) {
  o << signature(e) << "  [" << kind_name(e.kind) << (e.kind_for ? ", by arguments" : "") << "]\n    "
    << e.summary << "\n";
  for (const auto& a : e.args) {
    o << "    " << a.name << " : " << arg_type_name(a.type) << (a.required ? " (required)" : "");
    if (!a.def.is_null()) o << " = " << def_text(a);
    if (a.secret) o << " (secret)";
    if (!a.doc.empty()) o << "  — " << a.doc;
    o << "\n";
  }
  if (!e.rest.empty()) o << "    (list items of the table go to '" << e.rest << "')\n";
  o << "    → " << (e.returns.empty() ? "nothing" : e.returns) << "\n";
  for (const auto& f : e.results)
    o << "      ." << (f.name == "*" ? "[key]" : f.name) << " : " << f.type << (f.doc.empty() ? "" : "  — " + f.doc)
      << "\n";
  o << "\n";
}

void doc_text(std::ostream& o, const DocEntry& e) {
  if (e.kind == "value") {
    o << e.name << " : " << e.type << "  [value]\n    " << e.summary << "\n\n";
    return;
  }
  if (e.kind == "table" || e.kind == "absent" || e.kind == "module") {
    o << (e.kind == "module" ? e.call : e.name) << "  [" << e.kind << "]\n    " << e.summary << "\n\n";
    return;
  }
  o << (e.call.empty() ? e.name : e.call) << "  [" << e.kind << "]\n    " << e.summary << "\n";
  for (const auto& a : e.args) {
    o << "    " << a.name << " : " << a.type << (a.required ? " (required)" : "");
    if (!a.def.empty()) o << " = " << a.def;
    if (!a.doc.empty()) o << "  — " << a.doc;
    o << "\n";
  }
  if (e.kind == "function") o << "    → " << (e.returns.empty() ? "nothing" : e.returns) << "\n";
  for (const auto& f : e.results)
    o << "      ." << f.name << " : " << f.type << (f.doc.empty() ? "" : "  — " + f.doc) << "\n";
  o << "\n";
}

void prim_md(std::ostream& o, const Effect& e) {
  o << "### `" << signature(e) << "`\n\n"
    << "*" << kind_name(e.kind) << (e.kind_for ? " (the arguments decide)" : "") << "*"
    << (e.preview ? " · dry-run preview" : "") << " — " << e.summary << "\n\n";
  if (!e.args.empty()) {
    o << "| argument | type | default | |\n|---|---|---|---|\n";
    for (const auto& a : e.args)
      o << "| `" << a.name << "` | " << arg_type_name(a.type) << (a.required ? ", required" : "")
        << (a.secret ? ", secret" : "") << " | " << (a.def.is_null() ? "" : "`" + def_text(a) + "`") << " | "
        << cell(a.doc) << " |\n";
    o << "\n";
  }
  if (!e.rest.empty()) o << "The table's list items go to `" << e.rest << "`.\n\n";
  o << "Returns: " << (e.returns.empty() ? "nothing" : e.returns) << "\n\n";
  if (!e.results.empty()) {
    o << "| result field | type | |\n|---|---|---|\n";
    for (const auto& f : e.results)
      o << "| " << (f.name == "*" ? "*any key*" : "`" + f.name + "`") << " | " << f.type << " | " << cell(f.doc)
        << " |\n";
    o << "\n";
  }
}

void doc_md(std::ostream& o, const DocEntry& e, const char* heading) {
  if (e.kind == "table" || e.kind == "module") {
    o << (e.kind == "module" ? "`" + e.call + "`" : "") << (e.kind == "module" ? "\n\n" : "") << e.summary << "\n\n";
    return;
  }
  if (e.kind == "value") {
    o << heading << " `" << e.name << "`\n\n*" << e.type << "* — " << e.summary << "\n\n";
    return;
  }
  o << heading << " `" << (e.call.empty() ? e.name : e.call) << "`\n\n"
    << (e.kind == "declaration" ? "" : "*" + e.kind + "* — ") << e.summary << "\n\n";
  if (!e.args.empty()) {
    o << "| " << (e.kind == "function" && e.name != "runbook" && e.name != "step" ? "argument" : "field")
      << " | type | default | |\n|---|---|---|---|\n";
    for (const auto& a : e.args)
      o << "| `" << a.name << "` | " << a.type << (a.required ? ", required" : "") << " | "
        << (a.def.empty() ? "" : "`" + a.def + "`") << " | " << cell(a.doc) << " |\n";
    o << "\n";
  }
  if (e.kind == "function") o << "Returns: " << (e.returns.empty() ? "nothing" : e.returns) << "\n\n";
  if (!e.results.empty()) {
    o << "| result field | type | |\n|---|---|---|\n";
    for (const auto& f : e.results) o << "| `" << f.name << "` | " << f.type << " | " << cell(f.doc) << " |\n";
    o << "\n";
  }
}

void load_errors(const Model& m, std::ostream& o) {
  for (const auto& s : m.mods)
    if (!s.error.empty()) o << "(" << s.file << " could not be loaded: " << s.error << ")\n\n";
}

}  // namespace

json api_json(const Registry& r) {
  Model m = model(r);
  json out = json::array();
  for (const auto& s : m.sections)
    for (const auto& it : s.items) out.push_back(it.prim ? prim_json(*it.prim) : doc_json(*it.doc));
  for (const auto& s : m.mods)
    if (!s.error.empty())
      out.push_back({{"name", s.module}, {"kind", "module"}, {"source", "stdlib"}, {"error", s.error}});
  return out;
}

std::string api_text(const Registry& r) {
  Model m = model(r);
  std::ostringstream o;
  for (const auto& s : m.sections) {
    if (s.items.empty()) continue;
    o << "== " << s.title << " ==\n" << (s.intro.empty() ? "" : s.intro + "\n") << "\n";
    for (const auto& it : s.items) {
      if (it.prim) prim_text(o, *it.prim);
      else doc_text(o, *it.doc);
    }
  }
  load_errors(m, o);
  return o.str();
}

std::string api_markdown(const Registry& r) {
  Model m = model(r);
  std::ostringstream o;
  o << "# Runbook reference\n\n"
    << "Generated by `runbook api --markdown` from the registry the engine runs and the reference "
       "of the sandbox's other globals; do not edit by hand (`tests/` checks it is current).\n\n"
    << "Kinds of primitives: **probe** reads the world and runs in dry-run (not with `--offline`); "
       "**change** mutates it and is only planned in dry-run; **wait** polls for a state and is "
       "checked once, not waited for, in dry-run; **input** asks the operator and is not asked in "
       "dry-run. A **function** is plain Lua (no effect, not journaled).\n\n"
    << "Every primitive takes a table of named arguments (`fs.backup{ path = p }`); the positional "
       "forms shown in the headings work too (`fs.backup(p)`), with an optional table of named "
       "arguments last. A failing call raises an error naming the primitive; where `check` is "
       "listed, `check = false` returns the result with `ok = false` and `error` instead.\n\n"
    << "Sections: ";
  bool first = true;
  for (const auto& s : m.sections) {
    if (s.items.empty()) continue;
    o << (first ? "" : " · ") << s.title;
    first = false;
  }
  o << ".\n\n";
  for (const auto& s : m.sections) {
    if (s.items.empty()) continue;
    o << "## " << s.title << "\n\n";
    if (!s.lua_std && !s.modules && !s.intro.empty()) o << s.intro << "\n\n";
    if (s.lua_std) {
      o << s.intro << "\n\n| name | |\n|---|---|\n";
      for (const auto& it : s.items) {
        const DocEntry& e = *it.doc;
        std::string shown = e.kind == "function" ? e.call : e.name;
        std::string what = e.kind == "value" ? "*" + e.type + "* " + e.summary
                           : e.kind == "table" ? "**" + e.summary + "**" : e.summary;
        o << "| `" << cell(shown) << "` | " << cell(what) << " |\n";
      }
      o << "\n";
      continue;
    }
    if (s.modules) {
      o << s.intro << "\n\n";
      for (const auto& it : s.items) {
        const DocEntry& e = *it.doc;
        if (e.kind == "module") o << "### `" << e.name << "`\n\n";
        doc_md(o, e, "####");
      }
      continue;
    }
    for (const auto& it : s.items) {
      if (it.prim) prim_md(o, *it.prim);
      else if (it.doc->kind == "absent") o << "- `" << it.doc->name << "`: " << it.doc->summary << "\n";
      else doc_md(o, *it.doc, "###");
    }
    if (s.title == "Not in the sandbox") o << "\n";
  }
  load_errors(m, o);
  return o.str();
}

namespace {

const std::set<std::string>& lua_keywords() {
  static const std::set<std::string> k = {"and", "break", "do", "else", "elseif", "end", "false", "for",
                                          "function", "goto", "if", "in", "local", "nil", "not", "or",
                                          "repeat", "return", "then", "true", "until", "while"};
  return k;
}

bool is_ident(const std::string& s) {
  if (s.empty() || s.size() > 100 || lua_keywords().count(s)) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (!(std::isalpha(c) || c == '_' || (i > 0 && std::isdigit(c)))) return false;
  }
  return true;
}

// A name safe inside a ---@class / ---@field: identifier characters and dots only.
std::string cls(std::string s) {
  for (auto& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) c = '_';
  return s;
}

// One line of comment text.
std::string line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// A type of the reference as lua-language-server writes it.
std::string ls_type(const std::string& t) {
  static const std::map<std::string, std::string> m = {
      {"string", "string"},   {"integer", "integer"},   {"number", "number"},
      {"boolean", "boolean"}, {"duration", "runbook.duration"}, {"path", "string"},
      {"url", "string"},      {"list", "any[]"},        {"table", "table"},
      {"map", "table<string, any>"}, {"any", "any"},    {"function", "function"},
      {"userdata", "lightuserdata"}};
  auto it = m.find(t);
  return it == m.end() ? "any" : it->second;
}

// The type of a result described in prose: a bare type name is that type; "nothing" is none.
std::string ls_return(const std::string& returns) {
  static const std::set<std::string> plain = {"string", "number", "integer", "boolean"};
  if (returns.empty() || returns == "nothing") return "";
  return plain.count(returns) ? returns : "any";
}

// `T.name` as an assignable expression: T["until"] for a keyword.
std::string member(const std::string& table, const std::string& name) {
  return is_ident(name) ? table + "." + name : table + "[\"" + name + "\"]";
}

void ls_field(std::ostream& o, const std::string& name, bool optional, const std::string& type,
              const std::string& doc) {
  if (name == "*") {
    o << "---@field [string] " << type << (doc.empty() ? "" : " " + line(doc)) << "\n";
    return;
  }
  if (!is_ident(name)) return;
  o << "---@field " << name << (optional ? "? " : " ") << type << (doc.empty() ? "" : " " + line(doc)) << "\n";
}

void ls_primitive(std::ostream& o, const Effect& e) {
  std::string args = "runbook.args." + cls(e.name), result = "runbook.result." + cls(e.name);
  o << "---@class " << args << "\n";
  for (const auto& a : e.args)
    ls_field(o, a.name, !a.required, ls_type(arg_type_name(a.type)), a.doc + (a.def.is_null() ? "" : " (default " + def_text(a) + ")"));
  if (!e.rest.empty()) o << "---@field [integer] any the list items go to " << e.rest << "\n";
  std::string ret = ls_return(e.returns);
  if (ret.empty()) ret = "nil";
  bool optional = true;
  for (const auto& a : e.args) optional = optional && !a.required;
  if (!e.results.empty()) {
    o << "\n---@class " << result << " : runbook.result\n";
    for (const auto& f : e.results) ls_field(o, f.name, false, ls_type(f.type), f.doc);
    ret = result;
  }
  o << "\n---" << line(e.summary) << " [" << kind_name(e.kind) << "]\n"
    << "---@param args" << (optional ? "? " : " ") << args << "\n"
    << "---@return " << ret << (e.returns.empty() ? "" : " # " + line(e.returns)) << "\n";
  if (!e.positional.empty()) {
    o << "---@overload fun(";
    for (size_t i = 0; i < e.positional.size(); ++i) {
      std::string t = "any";
      bool req = false;
      for (const auto& a : e.args)
        if (a.name == e.positional[i]) {
          t = ls_type(arg_type_name(a.type));
          req = a.required;
        }
      o << (i ? ", " : "") << (is_ident(e.positional[i]) ? e.positional[i] : "arg" + std::to_string(i + 1))
        << (req ? "" : "?") << ": " << t;
    }
    o << ", opts?: " << args << "): " << ret << "\n";
  }
  auto dot = e.name.find('.');
  std::string lhs = dot == std::string::npos ? e.name : member(e.name.substr(0, dot), e.name.substr(dot + 1));
  o << lhs << " = function(args) end\n\n";
}

// A documented function: positional parameters, `opts.FIELD` arguments as fields of opts, or
// (when its call is NAME{ ... }) all its arguments as the fields of one table.
void ls_function(std::ostream& o, const DocEntry& e, const std::string& lhs, const std::string& id,
                 const std::string& short_name) {
  // checks.endpoints{ ... } (also after "x = "): one table of named arguments.
  bool one_table = e.call.find(short_name + "{") != std::string::npos ||
                   e.call.find(short_name + " {") != std::string::npos;
  std::vector<std::pair<std::string, std::string>> params;  // name, type
  std::map<std::string, std::vector<const DocArg*>> fields;
  for (const auto& a : e.args) {
    auto dot = a.name.find('.');
    if (one_table) fields["args"].push_back(&a);
    else if (dot != std::string::npos) fields[a.name.substr(0, dot)].push_back(&a);
  }
  if (one_table) params.push_back({"args", "runbook.args." + id});
  else
    for (const auto& a : e.args) {
      if (a.name.find('.') != std::string::npos) continue;
      std::string t = fields.count(a.name) ? "runbook.args." + id + "." + a.name : ls_type(a.type);
      params.push_back({a.name, t + (a.required ? "" : "?")});
    }
  for (const auto& [table, fs] : fields) {
    o << "---@class runbook.args." << id << (one_table ? "" : "." + table) << "\n";
    for (const DocArg* a : fs) {
      std::string name = one_table ? a->name : a->name.substr(a->name.find('.') + 1);
      ls_field(o, name, !a->required, ls_type(a->type), a->doc + (a->def.empty() ? "" : " (default " + a->def + ")"));
    }
    o << "\n";
  }
  std::string ret = ls_return(e.returns);
  if (!e.results.empty()) {
    o << "---@class runbook.result." << id << "\n";
    for (const auto& f : e.results) ls_field(o, f.name, false, ls_type(f.type), f.doc);
    o << "\n";
    ret = "runbook.result." + id;
  }
  o << "---" << line(e.summary) << "\n";
  std::string names;
  int n = 0;
  for (const auto& [name, type] : params) {
    std::string p = is_ident(name) ? name : "arg" + std::to_string(n + 1);
    o << "---@param " << p << " " << type << "\n";
    names += (n++ ? ", " : "") + p;
  }
  if (!ret.empty()) o << "---@return " << ret << " # " << line(e.returns) << "\n";
  o << lhs << " = function(" << names << ") end\n\n";
}

}  // namespace

std::string api_luals(const Registry& r) {
  Model m = model(r);
  std::ostringstream o;
  o << "---@meta\n"
    << "-- The globals of a runbook's sandbox, for lua-language-server. Generated by `runbook api --luals`\n"
    << "-- from the registry the engine runs; do not edit by hand: generate it again.\n"
    << "-- The sandbox has no os, io, debug or package: .luarc.json (runbook init) disables them.\n\n"
    << "---@alias runbook.duration string a duration like \"500ms\", \"30s\", \"5m\", \"1h30m\"\n\n"
    << "---@class runbook.result\n"
    << "---@field ok? boolean false when check = false and the call failed\n"
    << "---@field error? string the failure, with ok = false\n"
    << "---@field planned? boolean a dry-run's planned result\n\n";
  // The declarations.
  const auto& b = builtin_docs();
  auto find = [&](const std::string& n) -> const DocEntry* {
    for (const auto& e : b)
      if (e.name == n) return &e;
    return nullptr;
  };
  if (const DocEntry* p = find("params.NAME")) {
    o << "---@class runbook.param\n";
    for (const auto& a : p->args) ls_field(o, a.name, true, a.name == "type" ? "\"string\"|\"int\"|\"number\"|\"bool\"|\"path\"|\"url\"|\"duration\"|\"list\"" : ls_type(a.type), a.doc);
    o << "\n";
  }
  if (const DocEntry* d = find("runbook")) {
    o << "---@class runbook.declaration\n";
    for (const auto& a : d->args)
      ls_field(o, a.name, !a.required, a.name == "params" ? "table<string, runbook.param>" : a.name == "tags" ? "string[]" : ls_type(a.type), a.doc);
    o << "\n---" << line(d->summary) << "\n---@param decl runbook.declaration\nfunction runbook(decl) end\n\n";
  }
  if (const DocEntry* s = find("step")) {
    o << "---@class runbook.step\n---@field [1] string the step's name\n";
    for (const auto& a : s->args)
      ls_field(o, a.name, a.name != "run", a.name == "run" ? "fun(p: table)" : ls_type(a.type), a.doc);
    o << "\n---" << line(s->summary) << "\n---@param def runbook.step\n---@overload fun(name: string, fn: fun(p: table))\n"
      << "function step(def) end\n\n";
  }
  if (const DocEntry* t = find("try")) ls_function(o, *t, "try", "try", "try");
  // The tables, with their values as a class, then their functions.
  std::set<std::string> lua_tables;
  for (const auto& e : b)
    if (e.kind == "table" && e.source == "lua") lua_tables.insert(e.name);
  for (const auto& s : m.sections) {
    if (s.lua_std || s.modules) continue;
    for (const auto& it : s.items) {
      if (it.prim) {
        ls_primitive(o, *it.prim);
        continue;
      }
      const DocEntry& e = *it.doc;
      if (e.kind == "table") {
        std::vector<const DocEntry*> values;
        for (const auto& x : b)
          if (x.kind == "value" && table_of(x.name) == e.name) values.push_back(&x);
        o << "---" << line(e.summary) << "\n";
        if (!values.empty()) {
          o << "---@class runbook.global." << cls(e.name) << "\n";
          for (const DocEntry* v : values)
            ls_field(o, v->name.substr(v->name.find('.') + 1), v->name == "run.failed", ls_type(v->type), v->summary);
          o << e.name << " = {}\n\n";
        } else {
          o << e.name << " = {}\n\n";
        }
      } else if (e.kind == "function" && e.source != "lua" && !table_of(e.name).empty()) {
        std::string t = table_of(e.name);
        ls_function(o, e, member(t, e.name.substr(t.size() + 1)), cls(e.name), e.name.substr(t.size() + 1));
      }
    }
  }
  // The stdlib modules: a class each (`---@type runbook.module.test` on a required module).
  for (const auto& e : m.stdlib) {
    std::string id = cls(e.module);
    std::string var = "__" + cls(e.module);
    for (auto& c : var)
      if (c == '.') c = '_';
    if (e.kind == "module") {
      o << "---" << line(e.summary) << " (require \"" << e.module << "\")\n"
        << "---@class " << id << "\nlocal " << var << " = {}\n\n";
      continue;
    }
    std::string fname = e.name.substr(e.module.size() + 1);
    ls_function(o, e, member(var, fname), cls(e.name), fname);
  }
  return o.str();
}

}  // namespace rb::cli
