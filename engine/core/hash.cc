#include "core/hash.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace rb {
namespace {

struct MdCtx {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> p{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  MdCtx() { EVP_DigestInit_ex(p.get(), EVP_sha256(), nullptr); }
  void update(const void* d, size_t n) { EVP_DigestUpdate(p.get(), d, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(p.get(), md, &n);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < n; ++i) {
      out += digits[md[i] >> 4];
      out += digits[md[i] & 15];
    }
    return out;
  }
};

}  // namespace

std::string sha256_hex(std::string_view data) {
  MdCtx c;
  c.update(data.data(), data.size());
  return c.hex();
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  MdCtx c;
  char buf[65536];
  while (in) {
    in.read(buf, sizeof buf);
    c.update(buf, static_cast<size_t>(in.gcount()));
  }
  return c.hex();
}

}  // namespace rb
