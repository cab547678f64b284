// SQL text helpers for pg.script and pg.restore: a bounded statement splitter that knows
// PostgreSQL's quoting (so a ';' inside a string, a dollar-quoted function body or a comment is
// not a boundary), and reading a plain or gzip-compressed SQL dump with a size bound.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace rb::pg {

struct Statement {
  size_t begin = 0, end = 0;  // [begin, end) in the text, the ';' excluded
  int line = 1;               // 1-based line of its first token
  std::string verb;           // first keyword, upper-cased ("UPDATE"); "" if none
};

// The statements of `sql` in order, empty ones (";;", comments only) left out. Linear in the
// text; throws std::runtime_error past max_statements. An unterminated quote or comment runs to
// the end of the text (the server reports it).
std::vector<Statement> split_statements(const std::string& sql, size_t max_statements = 100000);

// 1-based line of a 0-based offset.
int line_at(const std::string& text, size_t offset);

// The text of a .sql file, or of a .sql.gz file decompressed (zlib, in-process). Throws
// std::runtime_error when it cannot be read, is corrupt, or is larger than max_bytes.
std::string read_sql_file(const std::string& path, size_t max_bytes);

// Whether a path names a plain SQL dump (.sql or .sql.gz, by name or by content).
bool is_plain_sql_dump(const std::string& path);

}  // namespace rb::pg
