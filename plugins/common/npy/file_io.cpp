#include "common/npy/file_io.h"

#include "common/npy/npy.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

namespace loom::npy {
namespace {

namespace fs = std::filesystem;

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000.0 && u < 4) v /= 1000.0, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// A full disk says how much the write still needed (when known) and how much is free, so the user knows
// how much to clear; a read-only file system says so. Empty for other errors.
std::string space_note(const fs::path& file, int err, std::optional<uint64_t> needed) {
  if (err == EROFS) return "; the file system is read-only";
  if (err != ENOSPC && err != EDQUOT) return "";
  std::string note = needed ? "needed " + human_bytes(*needed) : "";
  struct statvfs s {};
  const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  if (::statvfs(dir.c_str(), &s) == 0)
    note += (note.empty() ? "" : ", ") + human_bytes(static_cast<uint64_t>(s.f_bavail) * s.f_frsize) + " free";
  return (note.empty() ? "" : " (" + note + ")") + "; free some space and try again";
}

[[noreturn]] void sys_fail(const std::string& what, const fs::path& file, std::optional<uint64_t> needed = std::nullopt) {
  const int err = errno;
  throw Error(what + " '" + file.string() + "': " + std::strerror(err) + space_note(file, err, needed));
}

int open_or_throw(const fs::path& file, int flags, const char* what, mode_t mode = 0644) {
  int fd;
  do fd = ::open(file.c_str(), flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) sys_fail(what, file);
  return fd;
}

}  // namespace

void fsync_directory(const fs::path& dir) {
  const int fd = open_or_throw(dir.empty() ? fs::path(".") : dir, O_RDONLY | O_DIRECTORY, "cannot open directory");
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) sys_fail("cannot fsync directory", dir);
}

// ---- MappedFile -------------------------------------------------------------------------------------

MappedFile::MappedFile(const fs::path& file) : path_(file) {
  const int fd = open_or_throw(file, O_RDONLY, "cannot open for reading");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    sys_fail("cannot stat", file);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int saved = errno;
      ::close(fd);
      errno = saved;
      sys_fail("cannot memory-map", file);
    }
    data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);  // the mapping keeps the file referenced
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

// ---- OutputFile -------------------------------------------------------------------------------------

OutputFile::OutputFile(const fs::path& file)
    : path_(file), fd_(open_or_throw(file, O_WRONLY | O_CREAT | O_TRUNC, "cannot create")) {}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::write(const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      sys_fail("cannot write", path_, bytes);
    }
    if (n == 0) {  // nothing written and no error: would loop forever
      errno = EIO;
      sys_fail("cannot write", path_, bytes);
    }
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void OutputFile::pwrite(uint64_t offset, const void* data, size_t bytes) const {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd_, p, bytes, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      sys_fail("cannot write", path_, bytes);
    }
    if (n == 0) {
      errno = EIO;
      sys_fail("cannot write", path_, bytes);
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    bytes -= static_cast<size_t>(n);
  }
}

void OutputFile::reserve(uint64_t bytes) {
  if (bytes == 0) return;
  int rc;
  do rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(bytes));
  while (rc == EINTR);
  if (rc == ENOSPC || rc == EDQUOT)
    throw Error("not enough space for " + std::to_string(bytes) + " bytes in '" + path_.string() + "': " + std::strerror(rc) +
                space_note(path_, rc, bytes) + ", or put the file elsewhere");
  if (rc == EFBIG)
    throw Error("cannot make '" + path_.string() + "' " + std::to_string(bytes) + " bytes long: " + std::strerror(rc) +
                "; put the file on a file system that allows larger files");
  if (rc == EROFS || rc == EIO) {
    errno = rc;
    sys_fail("cannot allocate space in", path_, bytes);
  }
  if (rc != 0 && ::ftruncate(fd_, static_cast<off_t>(bytes)) != 0)  // a file system without fallocate
    sys_fail("cannot resize", path_);
}

void OutputFile::sync() {
  if (::fsync(fd_) != 0) sys_fail("cannot fsync", path_);
}

void OutputFile::close() {
  if (fd_ < 0) return;
  sync();
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) sys_fail("cannot close", path_);
}

// ---- AtomicFile -------------------------------------------------------------------------------------

AtomicFile::AtomicFile(const fs::path& target) : target_(target) {
  // The pid keeps two processes apart; a counter keeps two AtomicFiles of one process apart.
  static std::atomic<uint64_t> counter{0};
  temp_ = target_;
  temp_ += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  file_ = std::make_unique<OutputFile>(temp_);
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  file_.reset();
  std::error_code ec;
  fs::remove(temp_, ec);
}

void AtomicFile::commit() {
  file_->close();
  if (::rename(temp_.c_str(), target_.c_str()) != 0) sys_fail("cannot rename '" + temp_.string() + "' to", target_);
  committed_ = true;
  fsync_directory(target_.parent_path());
}

void write_file_atomic(const fs::path& file, std::string_view bytes) {
  AtomicFile out(file);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

// ---- FileLock ---------------------------------------------------------------------------------------

FileLock::FileLock(const fs::path& file) : FileLock(file, true) {}

FileLock::FileLock(const fs::path& file, bool wait) : path_(file) {
  if (!file.parent_path().empty()) fs::create_directories(file.parent_path());
  while (true) {
    const int fd = open_or_throw(file, O_RDWR | O_CREAT, "cannot open lock file");
    int rc;
    do rc = ::flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      const int saved = errno;
      ::close(fd);
      if (!wait && saved == EWOULDBLOCK) return;
      errno = saved;
      sys_fail("cannot lock", file);
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
