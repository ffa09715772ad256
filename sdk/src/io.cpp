// Loom::io — see sdk/include/loom/io.h for what each function promises and the one failure policy.
#include <loom/io.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

namespace loom::io {

namespace fs = std::filesystem;

namespace {

fs::path directory_of(const fs::path& file) { return file.parent_path().empty() ? fs::path(".") : file.parent_path(); }

[[noreturn]] void throw_write(std::string_view what, const fs::path& file, int err, int64_t needed = -1) {
  throw WriteError(error_message(what, file, err, needed));
}

[[noreturn]] void throw_read(std::string_view what, const fs::path& file, int err) {
  throw ReadError(error_message(what, file, err));
}

int open_retrying(const fs::path& file, int flags, mode_t mode = 0644) {
  int fd;
  do fd = ::open(file.c_str(), flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

// write(2) may write less than asked (signals, a filling disk): loop until done or a real error. A write
// of nothing at all would loop forever; it is reported as the I/O error it is. False with errno set.
bool write_all(int fd, const char* p, size_t bytes) {
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    p += n;
    bytes -= static_cast<size_t>(n);
  }
  return true;
}

std::string kind_of(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

// "<file> is a FIFO" or "<file> is a symbolic link to <target>, a FIFO": what `file` is, given the mode of
// what it resolves to.
std::string what_it_is(const fs::path& file, mode_t resolved) {
  struct stat own {};
  if (::lstat(file.c_str(), &own) == 0 && S_ISLNK(own.st_mode)) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(file, ec);
    return file.string() + " is a symbolic link" + (ec ? std::string() : " to " + target.string()) + ", " + kind_of(resolved);
  }
  return file.string() + " is " + kind_of(resolved);
}

// The checks shared by check_regular_file() and InputFile, on a stat of what `file` resolves to.
uint64_t checked_size(const fs::path& file, const struct stat& st, uint64_t max_bytes, std::string_view what) {
  if (!S_ISREG(st.st_mode))
    throw ReadError(what_it_is(file, st.st_mode) + ", not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes)
    throw ReadError(file.string() + " is " + human_bytes(size) + " (" + std::to_string(size) + " bytes), more than the " +
                    human_bytes(max_bytes) + " a " + (what.empty() ? std::string("file") : std::string(what)) +
                    " may be; pass the right file");
  return size;
}

}  // namespace

// ---- messages ------------------------------------------------------------------------------------------

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000.0 && u < 5) v /= 1000.0, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

int64_t free_bytes(const fs::path& path) {
  struct statvfs s {};
  if (::statvfs(path.c_str(), &s) != 0) return -1;
  return static_cast<int64_t>(s.f_bavail) * static_cast<int64_t>(s.f_frsize);
}

std::string space_note(const fs::path& file, int err, int64_t needed) {
  if (err == EROFS) return "; the file system is read-only";
  if (err != ENOSPC && err != EDQUOT) return "";
  std::string space = needed >= 0 ? "needed " + human_bytes(static_cast<uint64_t>(needed)) : "";
  const int64_t free = free_bytes(directory_of(file));
  if (free >= 0) space += (space.empty() ? "" : ", ") + human_bytes(static_cast<uint64_t>(free)) + " free";
  return (space.empty() ? "" : " (" + space + ")") + "; free some space and run again";
}

std::string error_message(std::string_view what, const fs::path& file, int err, int64_t needed) {
  return std::string(what) + " " + file.string() + ": " + std::strerror(err) + space_note(file, err, needed);
}

// ---- directories ---------------------------------------------------------------------------------------

void make_directories(const fs::path& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw WriteError("cannot create directory " + dir.string() + ": " + ec.message());
}

void sync_directory(const fs::path& dir) {
  const fs::path d = dir.empty() ? fs::path(".") : dir;
  const int fd = open_retrying(d, O_RDONLY | O_DIRECTORY);
  if (fd < 0) throw_write("cannot open directory", d, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) throw_write("cannot fsync directory", d, err);
}

// ---- whole-file atomic writes --------------------------------------------------------------------------

namespace {

// "cannot write <file>: <what> <tmp>: <strerror> (needed ..., ... free)...; its previous version is kept"
[[noreturn]] void fail_replacing(const fs::path& file, std::string_view what, const fs::path& tmp, int err, int64_t needed) {
  std::string message = error_message("cannot write " + file.string() + ": " + std::string(what), tmp, err, needed);
  std::error_code ec;
  if (fs::exists(file, ec)) message += "; its previous version is kept";
  throw WriteError(message);
}

}  // namespace

fs::path write_temp(const fs::path& file, std::string_view bytes) {
  const fs::path tmp = file.string() + ".tmp";
  const auto needed = static_cast<int64_t>(bytes.size());
  const int fd = open_retrying(tmp, O_WRONLY | O_CREAT | O_TRUNC);
  if (fd < 0) fail_replacing(file, "creating", tmp, errno, needed);
  const auto give_up = [&](std::string_view what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail_replacing(file, what, tmp, err, needed);
  };
  if (!write_all(fd, bytes.data(), bytes.size())) give_up("writing");
  if (::fsync(fd) != 0) give_up("syncing");
  if (::close(fd) != 0) {  // NFS and some FUSE file systems report a full disk only here
    const int err = errno;
    ::unlink(tmp.c_str());
    fail_replacing(file, "closing", tmp, err, needed);
  }
  return tmp;
}

void commit_temp(const fs::path& tmp, const fs::path& file) {
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail_replacing(file, "renaming", tmp, err, 0);
  }
  sync_directory(file.parent_path());
}

void write_file_atomically(const fs::path& file, std::string_view bytes) { commit_temp(write_temp(file, bytes), file); }

// ---- OutputFile ----------------------------------------------------------------------------------------

OutputFile::OutputFile(const fs::path& file) : path_(file), fd_(open_retrying(file, O_WRONLY | O_CREAT | O_TRUNC)) {
  if (fd_ < 0) throw_write("cannot create", file, errno);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::write(const void* data, size_t bytes) {
  if (!write_all(fd_, static_cast<const char*>(data), bytes)) throw_write("cannot write", path_, errno, static_cast<int64_t>(bytes));
}

void OutputFile::pwrite(uint64_t offset, const void* data, size_t bytes) const {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd_, p, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;  // nothing written and no error: would loop forever
      throw_write("cannot write", path_, errno, static_cast<int64_t>(bytes));
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
    throw WriteError("not enough space for " + std::to_string(bytes) + " bytes in " + path_.string() + ": " +
                     std::strerror(rc) + space_note(path_, rc, static_cast<int64_t>(bytes)) + ", or put the file elsewhere");
  if (rc == EFBIG)
    throw WriteError("cannot make " + path_.string() + " " + std::to_string(bytes) + " bytes long: " + std::strerror(rc) +
                     "; put the file on a file system that allows larger files");
  if (rc == EROFS || rc == EIO) throw_write("cannot allocate space in", path_, rc, static_cast<int64_t>(bytes));
  if (rc != 0 && ::ftruncate(fd_, static_cast<off_t>(bytes)) != 0)  // a file system without fallocate
    throw_write("cannot resize", path_, errno);
}

void OutputFile::sync() {
  if (::fsync(fd_) != 0) throw_write("cannot fsync", path_, errno);
}

void OutputFile::close() {
  if (fd_ < 0) return;
  sync();
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw_write("cannot close", path_, errno);
}

// ---- AtomicFile ----------------------------------------------------------------------------------------

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
  ::unlink(temp_.c_str());
}

void AtomicFile::commit() {
  file_->close();
  if (::rename(temp_.c_str(), target_.c_str()) != 0) throw_write("cannot rename " + temp_.string() + " to", target_, errno);
  committed_ = true;
  sync_directory(target_.parent_path());
}

// ---- AppendFile ----------------------------------------------------------------------------------------

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::set_path(fs::path path) {
  if (is_open()) throw std::logic_error("AppendFile::set_path on the open file " + path_.string());
  path_ = std::move(path);
}

void AppendFile::open() {
  if (is_open()) return;
  make_directories(path_.parent_path());
  fd_ = open_retrying(path_, O_WRONLY | O_CREAT | O_APPEND);
  if (fd_ < 0) throw_write("cannot open for appending", path_, errno);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw_write("cannot stat", path_, err);
  }
  size_ = st.st_size;
}

void AppendFile::append(std::string_view bytes) {
  open();
  if (!write_all(fd_, bytes.data(), bytes.size())) {
    const int err = errno;
    if (::ftruncate(fd_, size_) != 0) {
      // Best effort: the write error is the one to report, and a resume truncates to its checkpoint anyway.
    }
    throw_write("cannot write to", path_, err, static_cast<int64_t>(bytes.size()));
  }
  size_ += static_cast<int64_t>(bytes.size());
}

void AppendFile::sync() {
  open();
  if (::fsync(fd_) != 0) throw_write("cannot fsync", path_, errno);
  if (!directory_synced_) {
    sync_directory(path_.parent_path());
    directory_synced_ = true;
  }
  committed_ = size_;
}

void AppendFile::truncate_to(int64_t bytes) {
  if (is_open()) throw std::logic_error("AppendFile::truncate_to on the open file " + path_.string());
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT && bytes == 0) return;
    if (err == ENOENT)
      throw Error("cannot resume: " + path_.string() + " is missing, but the checkpoint recorded " + std::to_string(bytes) +
                  " bytes written to it");
    throw_read("cannot stat", path_, err);
  }
  if (!S_ISREG(st.st_mode))
    throw Error("cannot resume: " + what_it_is(path_, st.st_mode) + ", not the regular file the checkpoint recorded " +
                std::to_string(bytes) + " bytes of; remove it or put the file back");
  if (st.st_size < bytes)
    throw Error("cannot resume: " + path_.string() + " has " + std::to_string(st.st_size) + " bytes, fewer than the " +
                std::to_string(bytes) + " the checkpoint recorded (the file was replaced or cut short)");
  if (st.st_size > bytes && ::truncate(path_.c_str(), bytes) != 0) throw_write("cannot truncate", path_, errno);
  size_ = committed_ = bytes;
}

// ---- checked reads -------------------------------------------------------------------------------------

std::string describe(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return kind_of(st.st_mode);
  if (::lstat(path.c_str(), &st) == 0) return "a dangling symbolic link";
  return errno == ENOENT ? "missing" : std::string("unreadable (") + std::strerror(errno) + ")";
}

uint64_t check_regular_file(const fs::path& file, uint64_t max_bytes, std::string_view what) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) throw ReadError(file.string() + " does not exist" + (::lstat(file.c_str(), &st) == 0 ? " (a dangling symbolic link)" : ""));
    throw_read("cannot read", file, err);
  }
  return checked_size(file, st, max_bytes, what);
}

InputFile::InputFile(const fs::path& file, uint64_t max_bytes, std::string_view what) : path_(file) {
  // O_NONBLOCK: opening a FIFO without a writer would block until one appears; the fstat below refuses it.
  fd_ = open_retrying(file, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (fd_ < 0) {
    const int err = errno;
    if (err == ENOENT) throw ReadError(file.string() + " does not exist");
    throw_read("cannot open", file, err);
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw_read("cannot stat", file, err);
  }
  try {
    size_ = checked_size(file, st, max_bytes, what);
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags >= 0) ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

size_t InputFile::read(void* data, size_t bytes) {
  char* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::read(fd_, p + done, bytes - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_read("cannot read", path_, errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  read_ += done;
  return done;
}

std::string InputFile::read_all() {
  std::string bytes(size_ > read_ ? size_ - read_ : 0, '\0');
  bytes.resize(read(bytes.data(), bytes.size()));
  return bytes;
}

std::string read_file(const fs::path& file, uint64_t max_bytes, std::string_view what) {
  InputFile in(file, max_bytes, what);
  return in.read_all();
}

}  // namespace loom::io
