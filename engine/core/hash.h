#pragma once
#include <string>
#include <string_view>

namespace rb {

std::string sha256_hex(std::string_view data);
// Throws std::runtime_error naming the path when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace rb
