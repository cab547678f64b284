#include "effects/pg_sql.h"

#include <zlib.h>

#include <cctype>
#include <cstdio>
#include <memory>
#include <stdexcept>

namespace rb::pg {
namespace {

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// At sql[i] == '$': the length of a dollar-quote tag ("$$", "$body$"), or 0 if it is not one
// ("$1" is a parameter).
size_t dollar_tag(const std::string& s, size_t i) {
  size_t j = i + 1;
  if (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) return 0;
  while (j < s.size() && ident_char(s[j]) && j - i < 64) ++j;
  if (j < s.size() && s[j] == '$') return j - i + 1;
  return 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int line_at(const std::string& text, size_t offset) {
  int line = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i)
    if (text[i] == '\n') ++line;
  return line;
}

std::vector<Statement> split_statements(const std::string& sql, size_t max_statements) {
  std::vector<Statement> out;
  size_t n = sql.size(), i = 0;
  int line = 1;
  Statement cur;
  bool started = false;  // a token (not whitespace or comment) seen in the current statement
  auto start_token = [&](size_t at) {
    if (started) return;
    started = true;
    cur.begin = at;
    cur.line = line;
    size_t k = at;
    while (k < n && std::isalpha(static_cast<unsigned char>(sql[k])) && cur.verb.size() < 32)
      cur.verb += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[k++])));
  };
  auto finish = [&](size_t at) {
    if (started) {
      cur.end = at;
      if (out.size() >= max_statements)
        throw std::runtime_error("more than " + std::to_string(max_statements) + " statements");
      out.push_back(cur);
    }
    cur = Statement{};
    started = false;
  };
  // Skips to just past `close` (counting lines); to the end when it never comes.
  auto skip_to = [&](size_t from, const std::string& close) {
    size_t e = sql.find(close, from);
    size_t stop = e == std::string::npos ? n : e + close.size();
    for (size_t k = from; k < stop; ++k)
      if (sql[k] == '\n') ++line;
    return stop;
  };
  int parens = 0;
  while (i < n) {
    char c = sql[i];
    if (c == '\n') {
      ++line;
      ++i;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      i = skip_to(i, "\n");
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      // Block comments nest in PostgreSQL.
      int depth = 0;
      while (i < n) {
        if (sql.compare(i, 2, "/*") == 0) {
          ++depth;
          i += 2;
        } else if (sql.compare(i, 2, "*/") == 0) {
          i += 2;
          if (--depth == 0) break;
        } else {
          if (sql[i] == '\n') ++line;
          ++i;
        }
      }
    } else if (c == '\'' || c == '"') {
      start_token(i);
      // E'..' strings take backslash escapes; a doubled quote is a quote in both kinds.
      bool escapes = c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                     (i < 2 || !ident_char(sql[i - 2]));
      ++i;
      while (i < n) {
        if (sql[i] == '\n') ++line;
        if (escapes && sql[i] == '\\' && i + 1 < n) {
          if (sql[i + 1] == '\n') ++line;
          i += 2;
          continue;
        }
        if (sql[i] == c) {
          if (i + 1 < n && sql[i + 1] == c) {
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
    } else if (c == '$' && (i == 0 || !ident_char(sql[i - 1])) && dollar_tag(sql, i) > 0) {
      start_token(i);
      size_t len = dollar_tag(sql, i);
      i = skip_to(i + len, sql.substr(i, len));
    } else if (c == ';' && parens == 0) {
      finish(i);
      ++i;
    } else {
      start_token(i);
      if (c == '(') ++parens;
      if (c == ')' && parens > 0) --parens;
      ++i;
    }
  }
  finish(n);
  return out;
}

std::string read_sql_file(const std::string& path, size_t max_bytes) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files unchanged (transparent mode)
  if (!f) throw std::runtime_error("cannot open " + path);
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(f, gzclose);
  gzbuffer(f, 1 << 17);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    int got = gzread(f, buf, sizeof buf);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      throw std::runtime_error(path + " is corrupt or truncated (" + std::string(msg ? msg : "zlib error") + ")");
    }
    if (got == 0) {
      int err = 0;
      gzerror(f, &err);
      // Z_BUF_ERROR here is a gzip stream that ends early: truncated, not done.
      if (err != Z_OK) throw std::runtime_error(path + " is corrupt or truncated");
      break;
    }
    if (out.size() + static_cast<size_t>(got) > max_bytes)
      throw std::runtime_error(path + " holds more than " + std::to_string(max_bytes >> 20) +
                               " MiB of SQL (restore it with psql by hand, or use a custom-format dump)");
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

bool is_plain_sql_dump(const std::string& path) {
  if (ends_with(path, ".sql") || ends_with(path, ".sql.gz")) return true;
  // By content: a custom dump starts with "PGDMP", a gzip file with 1f 8b.
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) return false;
  unsigned char head[5] = {0};
  size_t got = std::fread(head, 1, sizeof head, f.get());
  if (got >= 2 && head[0] == 0x1f && head[1] == 0x8b) return true;
  if (got == 5 && std::string(reinterpret_cast<char*>(head), 5) == "PGDMP") return false;
  return got > 0 && (head[0] == '-' || head[0] == '\n' || head[0] == 'S' || head[0] == 'C');
}

}  // namespace rb::pg
