#include "state/durable_file.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace loom::host {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& file, const std::string& what, int err, int64_t needed) {
  std::string message = "cannot write " + file.string() + ": " + what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) {
    const int64_t free = free_bytes(file.parent_path().empty() ? fs::path(".") : file.parent_path());
    message += " (needed " + human_bytes(needed) + (free >= 0 ? ", " + human_bytes(free) + " free" : std::string()) +
               "); free some space and run again";
  } else if (err == EROFS) {
    message += "; the file system is read-only";
  }
  std::error_code ec;
  message += fs::exists(file, ec) ? "; its previous version is kept" : "";
  throw WriteError(message);
}

void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some file systems refuse to open directories
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

int64_t free_bytes(const fs::path& path) {
  struct statvfs s {};
  if (::statvfs(path.c_str(), &s) != 0) return -1;
  return static_cast<int64_t>(s.f_bavail) * static_cast<int64_t>(s.f_frsize);
}

std::string human_bytes(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000.0 && u < 4) v /= 1000.0, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

void make_directories(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw WriteError("cannot create directory " + dir.string() + ": " + ec.message());
}

fs::path write_temp(const fs::path& file, std::string_view bytes) {
  const fs::path tmp = file.string() + ".tmp";
  const int64_t needed = static_cast<int64_t>(bytes.size());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(file, "cannot create " + tmp.filename().string(), errno, needed);
  auto give_up = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(file, what, err, needed);
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      give_up("writing " + tmp.filename().string());
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) give_up("syncing " + tmp.filename().string());
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(file, "closing " + tmp.filename().string(), err, needed);
  }
  return tmp;
}

void commit_temp(const fs::path& tmp, const fs::path& file) {
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(file, "renaming " + tmp.filename().string(), err, 0);
  }
  sync_directory(file.parent_path());
}

void write_file_atomically(const fs::path& file, std::string_view bytes) { commit_temp(write_temp(file, bytes), file); }

}  // namespace loom::host
