// Content hashes: provenance records (which teacher produced which pseudo labels), checkpoint checksums.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace loom::host {

/// SHA-256 of a file's bytes, lower-case hex (OpenSSL's libcrypto). Throws io::ReadError when `file` is not a
/// regular file (checked before reading) or cannot be read.
std::string sha256_file(const std::filesystem::path& file);
/// SHA-256 of bytes in memory, lower-case hex.
std::string sha256_bytes(std::string_view bytes);

}  // namespace loom::host
