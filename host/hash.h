// Content hashes for provenance records (which teacher produced which pseudo labels).
#pragma once

#include <filesystem>
#include <string>

namespace loom::host {

/// SHA-256 of a file's bytes, lower-case hex (OpenSSL's libcrypto).
std::string sha256_file(const std::filesystem::path& file);

}  // namespace loom::host
