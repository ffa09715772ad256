// Every file the host writes goes through here: written to a temporary beside the target, fsynced,
// renamed over it, the directory fsynced. A failure (disk full, read-only file system, I/O error) throws
// WriteError naming the file, the bytes it needed and the space left, after removing the temporary — the
// previous version of the file, if any, is untouched.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace loom::host {

class WriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Replaces `file` with `bytes` atomically.
void write_file_atomically(const std::filesystem::path& file, std::string_view bytes);

/// The two halves of write_file_atomically, for a caller that must do something in between (rotate
/// checkpoint generations): write_temp() leaves `<file>.tmp` written and fsynced (removed again on
/// failure); commit_temp() renames it over `file` and syncs the directory.
std::filesystem::path write_temp(const std::filesystem::path& file, std::string_view bytes);
void commit_temp(const std::filesystem::path& tmp, const std::filesystem::path& file);

/// Free bytes for an unprivileged writer on the file system holding `path` (-1 when unknown).
int64_t free_bytes(const std::filesystem::path& path);

/// "2.4 MB"
std::string human_bytes(int64_t bytes);

/// std::filesystem::create_directories with a WriteError naming the directory instead of filesystem_error.
void make_directories(const std::filesystem::path& dir);

}  // namespace loom::host
