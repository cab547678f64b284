// Reading Lua source (a runbook, a required module, the prelude) with a bound: a path that
// names a device, a FIFO or a directory, or a file over the limit, is refused at once instead
// of being read until memory runs out (`runbook exec /dev/zero`).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace rb {

constexpr size_t kMaxSourceBytes = 8u << 20;  // 8 MiB: far above any real runbook

// The whole file into *out. On failure returns false with *err a sentence naming the path
// ("x.lua: not a regular file (a character device)"). Never blocks on a FIFO.
bool read_source_file(const std::string& path, std::string* out, std::string* err,
                      size_t max_bytes = kMaxSourceBytes);

// The text Lua is given for a source file: a UTF-8 byte-order mark is dropped and a first
// line starting with "#!" is blanked (kept as an empty line, so line numbers stay right), as
// the stand-alone `lua` does for files. The SHA-256 recorded is always of the file's bytes.
std::string lua_source_text(std::string_view bytes);

}  // namespace rb
