// Crash-safe file primitives for caches, without LibTorch: a read-only memory map, an output file with
// positional writes, an atomic file writer and an exclusive lock file.
//
// "Nothing half-written on disk": files are written under a temporary name in the target's directory,
// fsync'ed, renamed over the target (atomic on POSIX), and the directory is fsync'ed so the rename itself
// survives a power loss.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

namespace loom::npy {

/// fsync of a directory: makes renames and creations inside it durable. Throws npy::Error.
void fsync_directory(const std::filesystem::path& dir);

/// A whole file mapped read-only (PROT_READ, MAP_SHARED). Unmapped by the destructor. Any write through
/// data() faults, so hand the bytes out only as read-only views.
///
/// Pages are read on first touch; a file that another process truncates while mapped raises SIGBUS on
/// access, which is why Loom's caches never truncate or rewrite a published file (they rename new ones
/// into place, and an unlinked file stays readable for as long as it is mapped).
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& file);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

/// A new file opened for writing (created or truncated). Writes never leave a short write unreported;
/// pwrite() is safe to call from several threads at once for disjoint ranges.
class OutputFile {
 public:
  explicit OutputFile(const std::filesystem::path& file);
  ~OutputFile();  // closes; does not sync
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  /// Appends at the current position.
  void write(const void* data, size_t bytes);
  /// Writes at `offset` without moving the position (thread-safe for disjoint ranges).
  void pwrite(uint64_t offset, const void* data, size_t bytes) const;
  /// Allocates the file's first `bytes` on disk (for a file filled by pwrite()), so a full disk is
  /// reported now, with the size asked for, rather than as a failed write halfway through.
  void reserve(uint64_t bytes);
  /// fsync: the bytes are on disk when this returns.
  void sync();
  /// sync() then close; errors are thrown, not lost in a destructor.
  void close();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

/// Writes `target` atomically: the bytes go to a temporary file beside it, and commit() syncs it, renames
/// it over `target` and syncs the directory. Destroyed without commit() (an exception, a bug), the
/// temporary file is removed and `target` is untouched.
class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes) { file_->write(data, bytes); }
  void commit();

 private:
  std::filesystem::path target_, temp_;
  std::unique_ptr<OutputFile> file_;
  bool committed_ = false;
};

/// Writes `bytes` to `file` atomically (AtomicFile in one call).
void write_file_atomic(const std::filesystem::path& file, std::string_view bytes);

/// An exclusive advisory lock (flock) on a lock file, held until destruction. Safe against the lock file
/// being removed and recreated by another holder: after locking, it checks that the path still names
/// the locked inode and retries if not.
class FileLock {
 public:
  /// Blocks until the lock is held. Creates `file` (and its directory) if needed.
  explicit FileLock(const std::filesystem::path& file);
  /// Tries once; check held().
  FileLock(const std::filesystem::path& file, bool wait);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  bool held() const { return fd_ >= 0; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace loom::npy
