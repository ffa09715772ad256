// File primitives for caches, without LibTorch: a read-only memory map and an exclusive lock file. The
// writers (OutputFile, AtomicFile: temporary beside the target, fsync, rename, fsync of the directory) are
// Loom::io's (<loom/io.h>), named here too for the cache code.
#pragma once

#include <loom/io.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace loom::npy {

using io::AtomicFile;
using io::OutputFile;

/// A whole file mapped read-only (PROT_READ, MAP_SHARED). Unmapped by the destructor. The file must be a
/// regular file (io::InputFile's check: a FIFO or a device is refused with io::ReadError before mapping). Any write through
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
