// Loom::io (sdk/include/loom/io.h): the helpers' messages, their failure paths on a full, failing or
// read-only disk (through the write-failure shim, in a process of their own: tests/fixtures/io_probe.cpp),
// atomic writes that keep the old file, and the regular-file check on every read — in the library itself
// and in `loom` runs whose checkpoint, config or cache file is a FIFO, a device or a symlink to one.
#include "fifo_util.h"
#include "test_util.h"

#include <loom/io.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace loom::test {
namespace {

const std::string kSynthetic = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";
const fs::path kShim = fs::path(LOOM_TEST_FIXTURE_DIR) / "enospc" / "libloom_enospc_shim.so";
const fs::path kProbe = fs::path(LOOM_TEST_FIXTURE_DIR) / "io" / "loom_io_probe";

std::string quoted(const std::string& s) { return "'" + s + "'"; }
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const io::Error& e) {
    return e.what();
  }
  return "(no io::Error)";
}

/// Names in `dir` (not recursive), sorted.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// ---- messages ------------------------------------------------------------------------------------------

TEST(Io, HumanBytesUsesDecimalUnitsWithOneDecimal) {
  EXPECT_EQ(io::human_bytes(0), "0 B");
  EXPECT_EQ(io::human_bytes(999), "999 B");
  EXPECT_EQ(io::human_bytes(1000), "1.0 kB");
  EXPECT_EQ(io::human_bytes(2'400'000), "2.4 MB");
  EXPECT_EQ(io::human_bytes(1'260'000'000), "1.3 GB");
  EXPECT_EQ(io::human_bytes(3'000'000'000'000'000ull), "3.0 PB");
}

TEST(Io, ErrorMessageNamesTheFileAndTheSpace) {
  TempDir dir;
  const fs::path file = dir / "f.bin";
  const std::string full = io::error_message("cannot write to", file, ENOSPC, 1500);
  EXPECT_EQ(full.rfind("cannot write to " + file.string() + ": " + std::strerror(ENOSPC) + " (needed 1.5 kB, ", 0), 0u) << full;
  EXPECT_TRUE(contains(full, " free); free some space and run again")) << full;
  EXPECT_EQ(io::error_message("cannot write to", file, EROFS),
            "cannot write to " + file.string() + ": " + std::strerror(EROFS) + "; the file system is read-only");
  EXPECT_EQ(io::error_message("cannot read", file, EIO), "cannot read " + file.string() + ": " + std::strerror(EIO));
  EXPECT_GT(io::free_bytes(dir.path()), 0);
  EXPECT_EQ(io::free_bytes(dir / "no/such/dir"), -1);
}

// ---- directories ---------------------------------------------------------------------------------------

TEST(Io, DirectoryFailuresThrowWriteErrorWithThePathAndTheReason) {
  TempDir dir;
  write_file(dir / "plain", "x");
  const std::string mk = error_of([&] { io::make_directories(dir / "plain" / "sub"); });
  EXPECT_EQ(mk.rfind("cannot create directory " + (dir / "plain" / "sub").string() + ": ", 0), 0u) << mk;
  EXPECT_THROW(io::make_directories(dir / "plain" / "sub"), io::WriteError);

  const std::string sync = error_of([&] { io::sync_directory(dir / "missing"); });
  EXPECT_EQ(sync, "cannot open directory " + (dir / "missing").string() + ": " + std::strerror(ENOENT));
  EXPECT_THROW(io::sync_directory(dir / "plain"), io::WriteError) << "a file is not a directory";
  EXPECT_NO_THROW(io::sync_directory(dir.path()));
  io::make_directories(dir / "a" / "b");
  EXPECT_TRUE(fs::is_directory(dir / "a" / "b"));
}

// ---- atomic writes -------------------------------------------------------------------------------------

TEST(Io, AtomicWriteReplacesOrLeavesTheOldFileIntact) {
  TempDir dir;
  const fs::path file = dir / "state.json";
  io::write_file_atomically(file, "old");
  EXPECT_EQ(read_file(file), "old");
  // The temporary's name is taken by a symlink to /dev/full: writing it fails with ENOSPC.
  fs::create_symlink("/dev/full", dir / "state.json.tmp");
  const std::string error = error_of([&] { io::write_file_atomically(file, "new contents"); });
  EXPECT_EQ(error.rfind("cannot write " + file.string() + ": writing " + (dir / "state.json.tmp").string() + ": " +
                            std::strerror(ENOSPC) + " (needed 12 B, ",
                        0),
            0u)
      << error;
  EXPECT_TRUE(contains(error, "; its previous version is kept")) << error;
  EXPECT_EQ(read_file(file), "old");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"state.json"}) << "the temporary must be removed";
  io::write_file_atomically(file, "new");
  EXPECT_EQ(read_file(file), "new");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"state.json"});
}

TEST(Io, WriteTempThenCommitTempIsTheSameReplacement) {
  TempDir dir;
  const fs::path file = dir / "checkpoint.pt";
  write_file(file, "generation 1");
  const fs::path tmp = io::write_temp(file, "generation 2");
  EXPECT_EQ(tmp, dir / "checkpoint.pt.tmp");
  EXPECT_EQ(read_file(file), "generation 1") << "nothing replaced before commit_temp()";
  EXPECT_EQ(read_file(tmp), "generation 2");
  io::commit_temp(tmp, file);
  EXPECT_EQ(read_file(file), "generation 2");
  EXPECT_FALSE(fs::exists(tmp));
  // A rename that fails (the target is a non-empty directory) removes the temporary and names the file.
  fs::create_directories(dir / "busy" / "inside");
  const fs::path t2 = io::write_temp(dir / "busy", "x");
  const std::string error = error_of([&] { io::commit_temp(t2, dir / "busy"); });
  EXPECT_EQ(error.rfind("cannot write " + (dir / "busy").string() + ": renaming " + t2.string() + ": ", 0), 0u) << error;
  EXPECT_FALSE(fs::exists(t2));
}

TEST(Io, AtomicFileDroppedWithoutCommitLeavesTheTarget) {
  TempDir dir;
  const fs::path file = dir / "manifest.json";
  io::write_file_atomically(file, "old");
  {
    io::AtomicFile unfinished(file);
    unfinished.write("half", 4);
  }
  EXPECT_EQ(read_file(file), "old");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"manifest.json"});
  io::AtomicFile done(file);
  done.write("new", 3);
  done.commit();
  EXPECT_EQ(read_file(file), "new");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"manifest.json"});
}

TEST(Io, AppendFileCommitsAndCutsBackToACheckpoint) {
  TempDir dir;
  const fs::path file = dir / "logs" / "metrics.jsonl";
  {
    io::AppendFile out(file);
    EXPECT_FALSE(out.is_open());
    out.append("one\n");
    out.sync();
    out.append("two\n");
    EXPECT_EQ(out.size(), 8);
    EXPECT_EQ(out.committed(), 4);
  }
  EXPECT_EQ(read_file(file), "one\ntwo\n");
  io::AppendFile resumed(file);
  resumed.truncate_to(4);
  EXPECT_EQ(read_file(file), "one\n");
  resumed.append("three\n");
  EXPECT_EQ(read_file(file), "one\nthree\n");

  io::AppendFile shorter(file);
  const std::string error = error_of([&] { shorter.truncate_to(100); });
  EXPECT_TRUE(contains(error, file.string() + " has 10 bytes, fewer than the 100 the checkpoint recorded")) << error;
  io::AppendFile missing(dir / "none.jsonl");
  EXPECT_NO_THROW(missing.truncate_to(0)) << "no file and nothing committed: a run that had not written yet";
  EXPECT_TRUE(contains(error_of([&] { missing.truncate_to(5); }), (dir / "none.jsonl").string() + " is missing"));
}

// ---- regular files on every read -----------------------------------------------------------------------

TEST(Io, RegularFilesAreReadAndBounded) {
  TempDir dir;
  write_file(dir / "a.txt", "hello");
  EXPECT_EQ(io::check_regular_file(dir / "a.txt"), 5u);
  EXPECT_EQ(io::read_file(dir / "a.txt"), "hello");
  fs::create_symlink(dir / "a.txt", dir / "link.txt");
  EXPECT_EQ(io::read_file(dir / "link.txt"), "hello") << "a symlink to a regular file is that file";
  io::InputFile in(dir / "a.txt");
  char two[2];
  EXPECT_EQ(in.read(two, 2), 2u);
  EXPECT_EQ(in.read_all(), "llo");
  EXPECT_EQ(in.read(two, 2), 0u);

  const std::string big = error_of([&] { io::read_file(dir / "a.txt", 4, "config file"); });
  EXPECT_EQ(big, (dir / "a.txt").string() + " is 5 B (5 bytes), more than the 4 B a config file may be; pass the right file");
  EXPECT_EQ(error_of([&] { io::read_file(dir / "none"); }), (dir / "none").string() + " does not exist");
}

TEST(Io, FifosDevicesDirectoriesAndLinksToThemAreRefusedBeforeReading) {
  TempDir dir;
  make_fifo(dir / "pipe");
  FifoWatchdog watchdog(dir / "pipe");  // a regression fails below instead of hanging
  fs::create_symlink(dir / "pipe", dir / "to-pipe");
  fs::create_symlink("/dev/zero", dir / "to-zero");
  fs::create_directories(dir / "folder");
  const std::string tail = ", not a regular file";
  const auto refused = [&](const fs::path& file) {
    const std::string checked = error_of([&] { io::check_regular_file(file); });
    const std::string opened = error_of([&] { io::InputFile in(file); });
    EXPECT_EQ(checked, opened);
    EXPECT_THROW(io::read_file(file), io::ReadError);
    return opened;
  };
  EXPECT_EQ(refused(dir / "pipe").rfind((dir / "pipe").string() + " is a FIFO" + tail, 0), 0u) << refused(dir / "pipe");
  EXPECT_EQ(refused(dir / "to-pipe").rfind((dir / "to-pipe").string() + " is a symbolic link to " + (dir / "pipe").string() +
                                               ", a FIFO" + tail,
                                           0),
            0u)
      << refused(dir / "to-pipe");
  EXPECT_EQ(refused(dir / "to-zero").rfind((dir / "to-zero").string() + " is a symbolic link to /dev/zero, a character device" + tail, 0),
            0u)
      << refused(dir / "to-zero");
  EXPECT_EQ(refused("/dev/zero").rfind("/dev/zero is a character device" + tail, 0), 0u) << refused("/dev/zero");
  EXPECT_EQ(refused(dir / "folder").rfind((dir / "folder").string() + " is a directory" + tail, 0), 0u) << refused(dir / "folder");
  EXPECT_EQ(io::describe(dir / "pipe"), "a FIFO");
  EXPECT_EQ(io::describe(dir / "none"), "missing");
}

// ---- failure paths through the write-failure shim ------------------------------------------------------

struct ProbeResult {
  int exit_code = -1;
  std::string output;
};

/// The probe's `op` on `file` with `bytes`, through the shim watching `file`'s directory: writes fail with
/// `err` once `budget` bytes were written there.
ProbeResult probe(const std::string& op, const fs::path& file, size_t bytes, int err, int64_t budget) {
  const std::string env = "env LD_PRELOAD=" + quoted(kShim.string()) + " LOOM_ENOSPC_DIR=" + quoted(file.parent_path().string()) +
                          " LOOM_ENOSPC_BUDGET=" + std::to_string(budget) + " LOOM_ENOSPC_ERRNO=" + std::to_string(err);
  const CommandResult r = run(env + " " + quoted(kProbe.string()) + " " + op + " " + quoted(file.string()) + " " +
                              std::to_string(bytes));
  return {r.exit_code, r.output};
}

class IoFailures : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (!fs::exists(kShim) || !fs::exists(kProbe))
      GTEST_SKIP() << "the shim " << kShim << " or the probe " << kProbe << " was not built";
  }
  int err() const { return GetParam(); }
  // The part every message of this errno has after "<file>: ".
  void expect_reason(const std::string& output, int64_t needed) const {
    EXPECT_TRUE(contains(output, std::string(": ") + std::strerror(err()))) << output;
    if (err() == ENOSPC) {
      EXPECT_TRUE(contains(output, "(needed " + io::human_bytes(static_cast<uint64_t>(needed)) + ", ")) << output;
      EXPECT_TRUE(contains(output, " free); free some space and run again")) << output;
    } else if (err() == EROFS) {
      EXPECT_TRUE(contains(output, "; the file system is read-only")) << output;
    } else {
      EXPECT_FALSE(contains(output, "free some space")) << output;
    }
  }
};

TEST_P(IoFailures, AtomicWriteKeepsTheOldFileAndRemovesItsTemporary) {
  TempDir dir;
  const fs::path file = dir / "summary.json";
  write_file(file, "old");
  for (const std::string op : {"atomic", "stream"}) {
    SCOPED_TRACE(op);
    for (const int64_t budget : {0, 700}) {  // the first write fails, or one after a short write
      const ProbeResult r = probe(op, file, 3000, err(), budget);
      EXPECT_EQ(r.exit_code, 1) << r.output;
      EXPECT_TRUE(contains(r.output, "io::Error: ")) << r.output;
      EXPECT_TRUE(contains(r.output, file.string())) << r.output;
      expect_reason(r.output, 3000);  // the whole write's size, whatever part of it landed
      EXPECT_EQ(read_file(file), "old");
      EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"summary.json"}) << "a temporary was left";
    }
  }
  const ProbeResult ok = probe("atomic", file, 10, err(), -1);  // no budget: the write goes through
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(read_file(file), std::string(10, 'n'));
}

TEST_P(IoFailures, FailedAppendIsCutOffAgain) {
  TempDir dir;
  const fs::path file = dir / "metrics.jsonl";
  write_file(file, "committed\n");
  const ProbeResult r = probe("append", file, 5000, err(), 1000);  // 1000 bytes land, then the error
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "io::Error: cannot write to " + file.string() + ": ")) << r.output;
  expect_reason(r.output, 5000);
  EXPECT_EQ(read_file(file), "committed\n") << "no half record stays behind";
}

TEST_P(IoFailures, ReservationSaysHowMuchWasAskedFor) {
  TempDir dir;
  const fs::path file = dir / "data.npy";
  const ProbeResult r = probe("reserve", file, 4'000'000, err(), 100);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, file.string())) << r.output;
  expect_reason(r.output, 4'000'000);
  if (err() == ENOSPC) {
    EXPECT_TRUE(contains(r.output, "not enough space for 4000000 bytes in " + file.string())) << r.output;
  }
}

INSTANTIATE_TEST_SUITE_P(Errno, IoFailures, ::testing::Values(ENOSPC, EIO, EROFS), [](const ::testing::TestParamInfo<int>& info) {
  return std::string(info.param == ENOSPC ? "ENOSPC" : info.param == EIO ? "EIO" : "EROFS");
});

// ---- `loom` refuses what is not a regular file at once -------------------------------------------------

/// `loom ARGS` under `timeout 60`: a regression that hangs fails with exit 124 instead of hanging the suite.
CommandResult loom_bounded(const std::string& args) {
  return run("env -u LOOM_PLUGIN_PATH timeout 60 " LOOM_TEST_BIN " " + args);
}

TEST(IoRuns, ConfigThatIsAFifoOrADeviceIsRefused) {
  TempDir dir;
  make_fifo(dir / "config.toml");
  fs::create_symlink("/dev/zero", dir / "zero.toml");
  for (const char* command : {"run", "check"}) {
    const CommandResult fifo = loom_bounded(std::string(command) + " " + quoted((dir / "config.toml").string()));
    EXPECT_EQ(fifo.exit_code, 2) << fifo.output;
    EXPECT_TRUE(contains(fifo.output, (dir / "config.toml").string() + " is a FIFO, not a regular file")) << fifo.output;
    const CommandResult zero = loom_bounded(std::string(command) + " " + quoted((dir / "zero.toml").string()));
    EXPECT_EQ(zero.exit_code, 2) << zero.output;
    EXPECT_TRUE(contains(zero.output, " is a symbolic link to /dev/zero, a character device, not a regular file")) << zero.output;
  }
}

/// A finished one-epoch run of the synthetic config under `out`; its run directory.
fs::path finished_run(const fs::path& out) {
  const CommandResult r = loom_bounded("run " + quoted(kSynthetic) + " --set run.epochs=1 --set " +
                                       quoted("run.output_dir=" + out.string()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return only_run_dir(out, "synthetic");
}

TEST(IoRuns, ResumeRefusesACheckpointThatIsADeviceOrAFifo) {
  TempDir out;
  const fs::path run_dir = finished_run(out.path());
  ASSERT_TRUE(fs::exists(run_dir / "checkpoint.pt"));
  // The reliability finding: checkpoint.pt a symlink to /dev/zero made the resume hash an endless file.
  fs::remove(run_dir / "checkpoint.pt");
  fs::create_symlink("/dev/zero", run_dir / "checkpoint.pt");
  fs::remove(run_dir / "checkpoint.prev.pt");
  make_fifo(run_dir / "checkpoint.prev.pt");
  FifoWatchdog watchdog(run_dir / "checkpoint.prev.pt");
  const CommandResult r = loom_bounded("run --resume " + quoted(run_dir.string()));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, 124) << "the resume hung\n" << r.output;
  EXPECT_TRUE(contains(r.output, (run_dir / "checkpoint.pt").string() +
                                     " is a symbolic link to /dev/zero, a character device, not a regular file"))
      << r.output;
  EXPECT_TRUE(contains(r.output, (run_dir / "checkpoint.prev.pt").string() + " is a FIFO, not a regular file")) << r.output;
  EXPECT_TRUE(contains(r.output, "No usable checkpoint is left")) << r.output;
  EXPECT_FALSE(contains(r.output, "Exception raised from")) << r.output;

  // The saved config itself a FIFO: refused by name, before the checkpoint is looked at.
  fs::remove(run_dir / "config.resolved.toml");
  make_fifo(run_dir / "config.resolved.toml");
  FifoWatchdog config_watchdog(run_dir / "config.resolved.toml");
  const CommandResult c = loom_bounded("run --resume " + quoted(run_dir.string()));
  EXPECT_EQ(c.exit_code, 2) << c.output;
  EXPECT_TRUE(contains(c.output, (run_dir / "config.resolved.toml").string() + " is a FIFO, not a regular file")) << c.output;
}

/// `loom cache build` of the synthetic dataset into `cache_dir` (npy), bounded.
CommandResult build_cache(const fs::path& cache_dir) {
  return loom_bounded("cache build " + quoted(kSynthetic) + " --set cache.plugin=npy --set " +
                      quoted("run.cache_dir=" + cache_dir.string()) + " --set dataset.samples=256");
}

TEST(IoRuns, NpyCacheFileThatIsAFifoOrADeviceIsRebuiltNotRead) {
  TempDir dir;
  const fs::path cache_dir = dir / "cache";
  const CommandResult first = build_cache(cache_dir);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  fs::path key;
  for (const auto& e : fs::directory_iterator(cache_dir / "npy"))
    if (e.is_directory() && fs::exists(e.path() / "manifest.json")) key = e.path();
  ASSERT_FALSE(key.empty()) << "no cache directory under " << cache_dir / "npy";

  fs::remove(key / "data.npy");
  make_fifo(key / "data.npy");
  FifoWatchdog watchdog(key / "data.npy");
  const CommandResult fifo = build_cache(cache_dir);
  EXPECT_EQ(fifo.exit_code, 0) << fifo.output;
  EXPECT_TRUE(contains(fifo.output, (key / "data.npy").string() + " is a FIFO, not a regular file")) << fifo.output;
  EXPECT_TRUE(contains(fifo.output, "rebuilding it")) << fifo.output;
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(key / "data.npy"))) << "the rebuild wrote a real data.npy";

  fs::remove(key / "manifest.json");
  fs::create_symlink("/dev/zero", key / "manifest.json");
  const CommandResult zero = build_cache(cache_dir);
  EXPECT_EQ(zero.exit_code, 0) << zero.output;
  EXPECT_TRUE(contains(zero.output, "manifest.json is unreadable: " + (key / "manifest.json").string() +
                                        " is a symbolic link to /dev/zero, a character device, not a regular file"))
      << zero.output;
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(key / "manifest.json")));
}

}  // namespace
}  // namespace loom::test
