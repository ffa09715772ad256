#include "state/run_directory.h"

#include "state/durable_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <stdexcept>
#include <string>

namespace loom::host {

namespace fs = std::filesystem;

RunDirectory::RunDirectory(fs::path dir, std::vector<fs::path> created) : dir_(std::move(dir)), created_(std::move(created)) {}

RunDirectory::RunDirectory(RunDirectory&& other) noexcept
    : dir_(std::move(other.dir_)), created_(std::move(other.created_)), lock_fd_(other.lock_fd_) {
  other.lock_fd_ = -1;
}

RunDirectory::~RunDirectory() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

RunDirectory RunDirectory::create(const Params& run) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  const fs::path base = fs::path(run.str("output_dir")) / run.str("name");
  std::vector<fs::path> created;
  for (fs::path p = base; !p.empty() && !fs::exists(p); p = p.parent_path()) {
    created.insert(created.begin(), p);
    if (p == p.parent_path()) break;
  }
  make_directories(base);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(base, ec)) discard_if_never_started(entry.path());
  // create_directory is atomic: of two processes asking for the same name, exactly one gets it.
  for (int i = 1; i < 10000; ++i) {
    const fs::path dir = i == 1 ? base / stamp : base / (std::string(stamp) + "-" + std::to_string(i));
    std::error_code ec;
    if (fs::create_directory(dir, ec)) {
      std::vector<fs::path> mine(created.rbegin(), created.rend());
      mine.insert(mine.begin(), dir);
      RunDirectory rd(dir, std::move(mine));
      rd.lock();
      return rd;
    }
    if (ec) throw WriteError("cannot create the run directory " + dir.string() + ": " + ec.message());
  }
  throw WriteError("cannot find a free run directory name under " + base.string());
}

RunDirectory RunDirectory::open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / "config.resolved.toml", ec))
    throw std::runtime_error(dir.string() + " is not a run directory (it has no config.resolved.toml); pass a directory "
                             "written by `loom run`, e.g. runs/<name>/<timestamp>");
  RunDirectory rd(dir, {});
  rd.lock();
  // Temporaries of a killed process are incomplete by definition (the lock says no one else writes).
  for (const fs::path& sub : {dir, dir / "stages", dir / "models"})
    for (const auto& entry : fs::directory_iterator(sub, ec))
      if (entry.path().extension() == ".tmp") fs::remove(entry.path(), ec);
  return rd;
}

bool RunDirectory::discard_if_never_started(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec) || fs::exists(dir / "config.resolved.toml", ec)) return false;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename() != ".lock") return false;
  if (ec) return false;
  const fs::path file = dir / ".lock";
  if (!fs::exists(file, ec)) {
    // Empty: a run between creating its directory and its lock file, or one killed right there. A minute
    // later it is the latter.
    const auto age = fs::file_time_type::clock::now() - fs::last_write_time(dir, ec);
    if (ec || age < std::chrono::minutes(1)) return false;
    return fs::remove(dir, ec);
  }
  // The pid lock() wrote. None yet: a run between creating the lock file and writing its pid.
  long pid = 0;
  {
    std::ifstream in(file);
    if (!(in >> pid) || pid <= 0) return false;
  }
  if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) return false;  // alive (or not ours to ask)
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  if (free) fs::remove(file, ec), fs::remove(dir, ec);
  ::close(fd);
  return free && !fs::exists(dir, ec);
}

void RunDirectory::lock() {
  const fs::path file = dir_ / ".lock";
  lock_fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) throw WriteError("cannot create " + file.string() + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    std::ifstream in(file);
    std::string pid;
    in >> pid;
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw std::runtime_error("run directory " + dir_.string() + " is in use by pid " + (pid.empty() ? "?" : pid) +
                             " (another `loom run` or `--resume` of it); wait for it to finish, or stop it first");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    throw WriteError("cannot write " + file.string() + ": " + std::strerror(errno));
}

void RunDirectory::discard_if_unused() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec))
    if (entry.path().filename() != ".lock") return;  // something was written: keep it
  if (lock_fd_ >= 0) ::close(lock_fd_), lock_fd_ = -1;
  fs::remove(dir_ / ".lock", ec);
  for (const fs::path& d : created_) fs::remove(d, ec);  // innermost first; stops mattering once one is not empty
}

fs::path ScratchDir::create(int rank) {
  const fs::path tmp = fs::temp_directory_path();
  const std::string prefix = "loom-rank" + std::to_string(rank) + "-";
  std::error_code ec;
  // Leftovers of killed processes (SIGKILL runs no destructor): the pid in the name is no longer alive.
  for (const auto& entry : fs::directory_iterator(tmp, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("loom-rank", 0) != 0) continue;
    const auto first = name.find('-', 9), second = name.find('-', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::atol(name.substr(first + 1, second - first - 1).c_str()));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove_all(entry.path(), ec);
  }
  std::string pattern = (tmp / (prefix + std::to_string(::getpid()) + "-XXXXXX")).string();
  if (!::mkdtemp(pattern.data())) throw WriteError("cannot create a scratch directory in " + tmp.string() + ": " + std::strerror(errno));
  dir_ = pattern;
  return dir_;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

}  // namespace loom::host
