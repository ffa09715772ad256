#include "append_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace loom::sinks {

namespace fs = std::filesystem;

namespace {

std::string human_bytes(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000.0 && u < 4) v /= 1000.0, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace

std::string io_error(std::string_view what, const fs::path& file, int err, int64_t needed) {
  std::string message = std::string(what) + " " + file.string() + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) {
    struct statvfs s {};
    const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
    const bool known = ::statvfs(dir.c_str(), &s) == 0;
    const std::string free_text =
        known ? human_bytes(static_cast<int64_t>(s.f_bavail) * static_cast<int64_t>(s.f_frsize)) + " free" : "";
    std::string space = needed >= 0 ? "needed " + human_bytes(needed) : "";
    if (!free_text.empty()) space += (space.empty() ? "" : ", ") + free_text;
    message += (space.empty() ? "" : " (" + space + ")") + "; free some space and run again";
  } else if (err == EROFS) {
    message += "; the file system is read-only";
  }
  return message;
}

namespace {

void create_parent(const fs::path& file) {
  const fs::path dir = file.parent_path();
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create directory " + dir.string() + ": " + ec.message());
}

// write(2) may write less than asked (signals, a filling disk): loop until done or a real error. A write
// of nothing at all would loop forever; it is reported as the I/O error it is.
bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

void sync_directory(const fs::path& dir) {
  const fs::path d = dir.empty() ? fs::path(".") : dir;
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(io_error("cannot open directory", d, errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw std::runtime_error(io_error("cannot fsync directory", d, err));
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::set_path(fs::path path) {
  if (is_open()) throw std::logic_error("AppendFile::set_path on the open file " + path_.string());
  path_ = std::move(path);
}

void AppendFile::open() {
  if (is_open()) return;
  create_parent(path_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(io_error("cannot open for appending", path_, errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw std::runtime_error(io_error("cannot stat", path_, errno));
  size_ = st.st_size;
}

void AppendFile::append(std::string_view bytes) {
  open();
  if (!write_all(fd_, bytes)) {
    const int err = errno;
    if (::ftruncate(fd_, size_) != 0) {
      // Best effort: the write error is the one to report, and a resume truncates to its checkpoint anyway.
    }
    throw std::runtime_error(io_error("cannot write to", path_, err, static_cast<int64_t>(bytes.size())));
  }
  size_ += static_cast<int64_t>(bytes.size());
}

void AppendFile::sync() {
  open();
  if (::fsync(fd_) != 0) throw std::runtime_error(io_error("cannot fsync", path_, errno));
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
      throw std::runtime_error("cannot resume: " + path_.string() + " is missing, but the checkpoint recorded " +
                               std::to_string(bytes) + " bytes written to it");
    throw std::runtime_error(io_error("cannot stat", path_, err));
  }
  if (st.st_size < bytes)
    throw std::runtime_error("cannot resume: " + path_.string() + " has " + std::to_string(st.st_size) +
                             " bytes, fewer than the " + std::to_string(bytes) +
                             " the checkpoint recorded (the file was replaced or cut short)");
  if (st.st_size > bytes && ::truncate(path_.c_str(), bytes) != 0)
    throw std::runtime_error(io_error("cannot truncate", path_, errno));
  size_ = committed_ = bytes;
}

void replace_file(const fs::path& file, std::string_view contents) {
  create_parent(file);
  const fs::path tmp = file.string() + ".tmp";
  const int64_t needed = static_cast<int64_t>(contents.size());
  // The message names `file`, which the user knows, and only then the temporary the failure happened in.
  const auto message = [&](std::string_view what, int err) {
    return io_error(std::string("cannot write ") + file.string() + ": " + std::string(what), tmp, err, needed);
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(message("cannot create", errno));
  const auto fail = [&](std::string_view what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw std::runtime_error(message(what, err));
  };
  if (!write_all(fd, contents)) fail("writing", errno);
  if (::fsync(fd) != 0) fail("syncing", errno);
  if (::close(fd) != 0) {  // NFS and some FUSE file systems report a full disk only here
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error(message("closing", err));
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error(message("renaming", err));
  }
  sync_directory(file.parent_path());
}

}  // namespace loom::sinks
