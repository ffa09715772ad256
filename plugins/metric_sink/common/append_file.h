// Files a metric sink appends to, and the one-shot atomic replacement the csv sink needs.
//
// POSIX calls rather than std::ofstream: a stream reports "failed" without errno, and the user of a full
// disk deserves "No space left on device" with the file's name. It also gives flush() a real fsync.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace loom::sinks {

/// "<what> <file>: <strerror(errno)>", the shape of every I/O error the sinks throw. A full disk also says
/// how many bytes the write needed (when `needed` >= 0) and how many are free, so the user knows how much
/// to clear; a read-only file system says so.
std::string io_error(std::string_view what, const std::filesystem::path& file, int err, int64_t needed = -1);

/// fsync of a directory, so that a file created or renamed in it survives a crash.
void sync_directory(const std::filesystem::path& dir);

/// An append-only file opened on first use: the run directory does not exist when sinks are created.
class AppendFile {
 public:
  explicit AppendFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// Until opened, the path may still change (a resumed tensorboard sink continues its old file).
  void set_path(std::filesystem::path path);
  bool is_open() const { return fd_ >= 0; }
  /// Opens (creating the file and its directories) if not open yet.
  void open();

  /// Appends all of `bytes` or throws; a failed append is cut off again, so no half record stays behind.
  void append(std::string_view bytes);
  /// fsync (the directory too the first time, the file being new to it); the file's size becomes committed.
  void sync();

  /// Bytes in the file (valid once opened or truncated) and as of the last sync().
  int64_t size() const { return size_; }
  int64_t committed() const { return committed_; }

  /// Resume: cuts the file back to `bytes` committed at a checkpoint. Throws when the file is missing or
  /// shorter (it was not the file that checkpoint saw). Zero bytes and no file is a run that had not
  /// written yet: nothing to do.
  void truncate_to(int64_t bytes);

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  int64_t size_ = 0;
  int64_t committed_ = 0;
  bool directory_synced_ = false;
};

/// Replaces `file` by `contents` atomically: a temporary file in the same directory, written, fsynced and
/// renamed over it (then the directory fsynced). Readers see the old file or the new one, never a mix; the
/// temporary file is removed on any failure, and the error names `file` (the one the user knows).
void replace_file(const std::filesystem::path& file, std::string_view contents);

}  // namespace loom::sinks
