#include "state/hash.h"

#include <loom/io.h>

#include <openssl/evp.h>

#include <memory>
#include <stdexcept>
#include <vector>

namespace loom::host {

namespace {

std::string to_hex(const unsigned char* digest, unsigned int length) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace

std::string sha256_bytes(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("OpenSSL: SHA-256 unavailable");
  return to_hex(digest, length);
}

std::string sha256_file(const std::filesystem::path& file) {
  // A regular file, checked before the first read: a FIFO or a symlink to /dev/zero would never end.
  io::InputFile in(file, io::kNoLimit, "file to hash");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw std::runtime_error("OpenSSL: SHA-256 unavailable");
  std::vector<char> buffer(1 << 20);
  while (const size_t got = in.read(buffer.data(), buffer.size())) EVP_DigestUpdate(ctx.get(), buffer.data(), got);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  return to_hex(digest, length);
}

}  // namespace loom::host
