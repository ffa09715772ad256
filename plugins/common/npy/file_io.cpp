#include "common/npy/file_io.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace loom::npy {

namespace fs = std::filesystem;

// ---- MappedFile -------------------------------------------------------------------------------------

MappedFile::MappedFile(const fs::path& file) : path_(file) {
  const io::InputFile in(file, io::kNoLimit, "memory-mapped file");  // a regular file, or io::ReadError
  size_ = static_cast<size_t>(in.size());
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, in.fd(), 0);
    if (p == MAP_FAILED) throw io::ReadError(io::error_message("cannot memory-map", file, errno));
    data_ = static_cast<const std::byte*>(p);
  }
  // `in` closes the descriptor; the mapping keeps the file referenced.
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

// ---- FileLock ---------------------------------------------------------------------------------------

FileLock::FileLock(const fs::path& file) : FileLock(file, true) {}

FileLock::FileLock(const fs::path& file, bool wait) : path_(file) {
  io::make_directories(file.parent_path());
  while (true) {
    int fd;
    do fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) throw io::WriteError(io::error_message("cannot open lock file", file, errno));
    int rc;
    do rc = ::flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      const int saved = errno;
      ::close(fd);
      if (!wait && saved == EWOULDBLOCK) return;
      throw io::WriteError(io::error_message("cannot lock", file, saved));
    }
    // The previous holder may have removed the lock file (clear()) after we opened it: then we hold a
    // lock on an orphaned inode that nobody else can see. Lock the file that is there now instead.
    struct stat held {}, current {};
    if (::fstat(fd, &held) == 0 && ::stat(file.c_str(), &current) == 0 && held.st_dev == current.st_dev &&
        held.st_ino == current.st_ino) {
      fd_ = fd;
      return;
    }
    ::close(fd);
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

}  // namespace loom::npy
