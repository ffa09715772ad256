// The run directory, owned by one process at a time: a new run's directory is created atomically (two
// runs started in the same second get different directories) and both new and resumed runs hold an
// advisory lock on it (<run_dir>/.lock, with the holder's pid) for their whole life, so a second
// `loom run --resume` of the same directory is refused instead of interleaving with the first.
#pragma once

#include <loom/params.h>

#include <filesystem>
#include <vector>

namespace loom::host {

class RunDirectory {
 public:
  /// <output_dir>/<name>/<timestamp>[-N], newly created, locked. Directories of runs that never started
  /// (discard_if_never_started) under <output_dir>/<name>/ are removed first.
  static RunDirectory create(const Params& run);
  /// An existing run directory, locked. Throws when it is not a run directory or another process holds it.
  static RunDirectory open(const std::filesystem::path& dir);
  /// Whether `dir` is what a run killed before it wrote config.resolved.toml leaves: a directory holding
  /// nothing but the lock file of a process that is gone. Such a directory is removed, and true returned.
  /// A lock whose holder is alive (or that names none yet) is a run starting now: left alone, false. A
  /// directory without even the lock file is removed once it is a minute old.
  static bool discard_if_never_started(const std::filesystem::path& dir);

  RunDirectory(RunDirectory&& other) noexcept;
  RunDirectory& operator=(RunDirectory&&) = delete;
  ~RunDirectory();

  const std::filesystem::path& path() const { return dir_; }
  /// A new run that failed before writing anything removes what create() made (the directory and any
  /// parents it had to create), so a failure leaves nothing on disk.
  void discard_if_unused();

 private:
  RunDirectory(std::filesystem::path dir, std::vector<std::filesystem::path> created);
  void lock();

  std::filesystem::path dir_;
  std::vector<std::filesystem::path> created_;  ///< directories create() made, innermost first
  int lock_fd_ = -1;
};

/// A scratch directory for ranks other than 0 (plugins may write files; the run directory is rank 0's),
/// removed on every way out that runs destructors; stale ones of dead processes are removed at start.
class ScratchDir {
 public:
  std::filesystem::path create(int rank);
  ~ScratchDir();

 private:
  std::filesystem::path dir_;
};

}  // namespace loom::host
