// A run whose disk fills up at any write — a metrics.jsonl append, a checkpoint, a stage file, model.pt,
// summary.json — stops with exit 1 and a message naming the file and the space (never `terminate`), leaves
// no temporary file behind and keeps its last good checkpoint; once space is free, `loom run --resume`
// finishes with exactly the weights and epoch records of a run that never failed.
//
// The disk "fills" through tests/fixtures/enospc_shim.c (LD_PRELOAD): writes to files under the output
// directory fail with ENOSPC after a byte budget. A traced reference run first says how many bytes a whole
// run writes and to which files; the budgets are fractions of that total and points inside chosen writes.
#include "run_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>

namespace loom::test {
namespace {

const std::string kSynthetic = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";
const fs::path kShim = fs::path(LOOM_TEST_FIXTURE_DIR) / "enospc" / "libloom_enospc_shim.so";

/// One write the shim saw: `before` bytes had been written to watched files, this one asked for `asked`.
struct TracedWrite {
  int64_t before = 0;
  int64_t asked = 0;
  int64_t result = 0;
  fs::path file;
};

std::vector<TracedWrite> read_trace(const fs::path& file) {
  std::vector<TracedWrite> writes;
  std::ifstream in(file);
  TracedWrite w;
  std::string path;
  while (in >> w.before >> w.asked >> w.result && std::getline(in, path)) {
    w.file = path.substr(path.find_first_not_of(' '));
    writes.push_back(w);
  }
  return writes;
}

/// `loom run` of the synthetic config into `out`, through the shim when `budget` or `trace` is given.
CommandResult run_loom(const fs::path& out, std::optional<int64_t> budget, const fs::path& trace = {},
                       int fail_errno = ENOSPC) {
  std::string env = "env -u LOOM_PLUGIN_PATH";
  if (budget || !trace.empty()) {
    env += " LD_PRELOAD=" + quote(kShim.string()) + " LOOM_ENOSPC_DIR=" + quote(out.string());
    if (budget) env += " LOOM_ENOSPC_BUDGET=" + std::to_string(*budget);
    if (!trace.empty()) env += " LOOM_ENOSPC_TRACE=" + quote(trace.string());
    env += " LOOM_ENOSPC_ERRNO=" + std::to_string(fail_errno);
  }
  return run(env + " " LOOM_TEST_BIN " run " + quote(kSynthetic) + " --set " + quote("run.output_dir=" + out.string()));
}

/// What the traced reference run left: its run directory and every write it made.
struct Reference {
  std::unique_ptr<TempDir> out, trace_dir;
  fs::path run_dir;
  std::vector<TracedWrite> writes;
  int64_t total = 0;
  std::string problem;  // why the cases cannot run (empty: they can)
  bool skip = false;    // the problem is that LD_PRELOAD cannot work here, not a failure
};

Reference& reference() {
  static Reference ref = [] {
    Reference r;
    if (!fs::exists(kShim)) {
      r.problem = "the write-failure shim " + kShim.string() + " was not built; these tests need LD_PRELOAD";
      r.skip = true;
      return r;
    }
    r.out = std::make_unique<TempDir>();
    r.trace_dir = std::make_unique<TempDir>();
    const fs::path trace = *r.trace_dir / "trace.txt";
    const CommandResult result = run_loom(r.out->path(), std::nullopt, trace);
    if (result.exit_code != 0) {
      r.problem = "the reference run failed (exit " + std::to_string(result.exit_code) + "):\n" + result.output;
      return r;
    }
    r.run_dir = only_run_dir(r.out->path(), "synthetic");
    r.writes = read_trace(trace);
    if (r.writes.empty()) {
      r.problem = "LD_PRELOAD=" + kShim.string() + " saw no write of the reference run (is loom linked statically, "
                  "or run set-uid?)";
      return r;
    }
    for (const auto& w : r.writes) r.total += std::max<int64_t>(0, w.result);
    return r;
  }();
  return ref;
}

bool name_starts(const fs::path& file, const std::string& prefix) { return file.filename().string().rfind(prefix, 0) == 0; }

/// The middle of the first write to a file named `prefix`... after the writes to one named `after`... have
/// ended (when given): a budget that runs out inside that write. -1 when the reference run made no such write.
int64_t inside_write(const std::vector<TracedWrite>& writes, const std::string& prefix, const std::string& after = "") {
  enum { Waiting, InAfter, Armed } state = after.empty() ? Armed : Waiting;
  for (const auto& w : writes) {
    const bool is_after = !after.empty() && name_starts(w.file, after);
    if (state == Waiting && is_after) state = InAfter;
    else if (state == InAfter && !is_after) state = Armed;
    if (state == Armed && name_starts(w.file, prefix) && w.asked > 1) return w.before + w.asked / 2;
  }
  return -1;
}

/// The write that a budget cuts short, for the test's log.
std::string landing(const std::vector<TracedWrite>& writes, int64_t budget) {
  for (const auto& w : writes)
    if (w.before + w.asked > budget) return w.file.filename().string() + " (a write of " + std::to_string(w.asked) + " B)";
  return "nothing (the budget covers the whole run)";
}

struct Case {
  std::string name;
  double fraction = 0;        // of the reference run's total bytes, when `file` is empty
  std::string file, after;    // else: inside the first write to `file`... after one to `after`...
  int fail_errno = ENOSPC;
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

// Checkpoints are most of the bytes, so the fractions mostly land in checkpoint writes (and the first one in
// the first checkpoint, before which there is nothing to resume); the named writes aim at the small files.
const Case kCases[] = {
    {"Budget10pct", 0.10},
    {"Budget35pct", 0.35},
    {"Budget60pct", 0.60},
    {"Budget85pct", 0.85},
    {"Budget99pct", 0.99},
    {"InMetricsJsonlAfterFirstCheckpoint", 0, "metrics.jsonl", "checkpoint.pt"},
    {"InStageFile", 0, "supervised.pt"},
    {"InModelPt", 0, "model.pt"},
    {"InSummaryJson", 0, "summary.json"},
    {"EioInSecondCheckpoint", 0, "checkpoint.pt", "checkpoint.pt", EIO},
    {"ErofsInMetricsJsonl", 0, "metrics.jsonl", "checkpoint.pt", EROFS},
};

/// Lines of `output` that say `needle`, without spdlog's own complaints about loom.log (it reports a failed
/// log write itself and carries on; the run's error message is what the user must get).
std::vector<std::string> lines_with(const std::string& output, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line))
    if (line.find(needle) != std::string::npos && line.find("*** LOG ERROR") == std::string::npos) out.push_back(line);
  return out;
}

std::vector<fs::path> temporaries_under(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (name.find(".tmp") != std::string::npos || name.find(".partial") != std::string::npos)
      found.push_back(it->path());
  }
  return found;
}

class DiskFull : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const Reference& ref = reference();
    if (ref.skip) GTEST_SKIP() << ref.problem;
    ASSERT_TRUE(ref.problem.empty()) << ref.problem;
  }
};

TEST_P(DiskFull, FailsCleanlyAndResumesExactly) {
  const Reference& ref = reference();
  const Case& c = GetParam();
  const int64_t budget = c.file.empty() ? static_cast<int64_t>(c.fraction * static_cast<double>(ref.total))
                                        : inside_write(ref.writes, c.file, c.after);
  ASSERT_GE(budget, 0) << "the reference run wrote no " << c.file << (c.after.empty() ? "" : " after " + c.after);
  SCOPED_TRACE("budget " + std::to_string(budget) + " B of the reference run's " + std::to_string(ref.total) +
               " B runs out in " + landing(ref.writes, budget));

  TempDir out;
  const CommandResult failed = run_loom(out.path(), budget, {}, c.fail_errno);
  EXPECT_EQ(failed.exit_code, 1) << "a full disk must end the run with exit 1 (134: abort, 139: crash)\n" << failed.output;
  EXPECT_EQ(failed.output.find("terminate called"), std::string::npos) << failed.output;
  EXPECT_EQ(failed.output.find("Exception raised from"), std::string::npos) << "a LibTorch backtrace reached the user\n"
                                                                             << failed.output;
  const fs::path run_dir = only_run_dir(out.path(), "synthetic");
  ASSERT_FALSE(run_dir.empty()) << failed.output;

  // The message names the file (inside the run directory) and says why; for a full disk also the size
  // needed and the space free ("needed 1.2 MB, 0 B free").
  const std::string why = std::strerror(c.fail_errno);
  const auto lines = lines_with(failed.output, why);
  const auto names_file = [&](const std::string& line) { return line.find(run_dir.string() + "/") != std::string::npos; };
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), names_file))
      << "no message names a file in " << run_dir << " with \"" << why << "\"\n" << failed.output;
  if (c.fail_errno == ENOSPC) {
    const auto says_space = [&](const std::string& line) {
      return names_file(line) && line.find("needed ") != std::string::npos && line.find(" free") != std::string::npos;
    };
    EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), says_space))
        << "the message does not say how much was needed and how much is free\n" << failed.output;
  }
  const auto left = temporaries_under(run_dir);
  EXPECT_TRUE(left.empty()) << "temporary file left: " << (left.empty() ? "" : left.front().string());

  // Space is free again: the run continues from its last good checkpoint, without the shim.
  const bool had_checkpoint = fs::exists(run_dir / "checkpoint.pt");
  const CommandResult resumed = loom("run --resume " + quote(run_dir.string()));
  if (!had_checkpoint) {
    EXPECT_NE(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("never reached its first checkpoint"), std::string::npos) << resumed.output;
    return;
  }
  ASSERT_EQ(resumed.exit_code, 0) << "failed run:\n" << failed.output << "\nresume:\n" << resumed.output;

  const auto expected = load_weights(ref.run_dir / "model.pt");
  const auto actual = load_weights(run_dir / "model.pt");
  ASSERT_FALSE(expected.empty());
  ASSERT_EQ(expected.size(), actual.size());
  for (const auto& [name, tensor] : expected) {
    ASSERT_TRUE(actual.count(name)) << name;
    EXPECT_TRUE(torch::equal(tensor, actual.at(name))) << name << " differs from the uninterrupted run's";
  }
  const auto want = read_epoch_records(ref.run_dir / "metrics.jsonl");
  const auto got = read_epoch_records(run_dir / "metrics.jsonl");
  ASSERT_EQ(want.size(), got.size()) << read_file(run_dir / "metrics.jsonl");
  std::set<std::pair<std::string, int64_t>> seen;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(want[i]["stage"], got[i]["stage"]);
    EXPECT_EQ(want[i]["epoch"], got[i]["epoch"]);
    EXPECT_EQ(want[i]["train_loss"].get<double>(), got[i]["train_loss"].get<double>()) << "epoch record " << i;
    EXPECT_TRUE(seen.insert({got[i]["stage"].get<std::string>(), got[i]["epoch"].get<int64_t>()}).second)
        << "stage " << got[i]["stage"] << " epoch " << got[i]["epoch"] << " reported twice";
  }
  EXPECT_TRUE(fs::exists(run_dir / "summary.json"));
  EXPECT_TRUE(temporaries_under(run_dir).empty());
}

INSTANTIATE_TEST_SUITE_P(Writers, DiskFull, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// ---- the npy cache: `loom cache build` on a disk that fills up -----------------------------------------

/// `loom cache build` of the synthetic dataset with `samples`, into `cache_dir`, through the shim when asked.
CommandResult build_cache(const fs::path& cache_dir, int samples, std::optional<int64_t> budget,
                          const fs::path& trace = {}) {
  std::string env = "env -u LOOM_PLUGIN_PATH";
  if (budget || !trace.empty()) {
    env += " LD_PRELOAD=" + quote(kShim.string()) + " LOOM_ENOSPC_DIR=" + quote(cache_dir.string());
    if (budget) env += " LOOM_ENOSPC_BUDGET=" + std::to_string(*budget);
    if (!trace.empty()) env += " LOOM_ENOSPC_TRACE=" + quote(trace.string());
  }
  return run(env + " " LOOM_TEST_BIN " cache build " + quote(kSynthetic) + " --set cache.plugin=npy --set " +
             quote("run.cache_dir=" + cache_dir.string()) + " --set dataset.samples=" + std::to_string(samples));
}

/// What is under `<cache_dir>/npy` but lock files (a build leaves its key's lock file, by design).
std::vector<std::string> cache_entries(const fs::path& cache_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cache_dir / "npy", ec))
    if (e.path().extension() != ".lock") names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The build fails at its reservation of data.npy, inside the rows, in labels.npy and in manifest.json: each
// time exit 1 with the file and the error, no temporary directory left, and the cache of another dataset
// size that was already there still valid.
TEST(DiskFullCache, NpyBuildFailsCleanlyAndKeepsTheExistingCache) {
  if (!fs::exists(kShim)) GTEST_SKIP() << "the write-failure shim " << kShim << " was not built; this test needs LD_PRELOAD";
  TempDir dir, traces;
  const fs::path cache_dir = dir / "cache";
  const CommandResult first = build_cache(cache_dir, 512, std::nullopt);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto existing = cache_entries(cache_dir);

  // A traced build of another size (its own cache key) in a scratch cache dir says where its bytes go.
  TempDir scratch;
  const CommandResult traced = build_cache(scratch / "cache", 1024, std::nullopt, traces / "trace.txt");
  ASSERT_EQ(traced.exit_code, 0) << traced.output;
  const auto writes = read_trace(traces / "trace.txt");
  ASSERT_FALSE(writes.empty()) << "LD_PRELOAD=" << kShim << " saw no write of the cache build";

  std::vector<std::pair<std::string, int64_t>> budgets = {{"data.npy reservation", 100}};
  for (const char* file : {"data.npy", "labels.npy", "manifest.json"}) {
    int64_t at = -1;  // the last write to the file (after data.npy's reservation: its rows)
    for (const auto& w : writes)
      if (name_starts(w.file, file) && w.asked > 1) at = w.before + w.asked / 2;
    ASSERT_GE(at, 0) << "the traced build wrote no " << file;
    budgets.emplace_back(std::string("inside ") + file, at);
  }
  for (const auto& [where, budget] : budgets) {
    SCOPED_TRACE(where + ": budget " + std::to_string(budget) + " B, lands in " + landing(writes, budget));
    const CommandResult failed = build_cache(cache_dir, 1024, budget);
    EXPECT_EQ(failed.exit_code, 1) << failed.output;
    EXPECT_EQ(failed.output.find("terminate called"), std::string::npos) << failed.output;
    const auto lines = lines_with(failed.output, "No space left on device");
    EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), [&](const std::string& line) {
      return line.find((cache_dir / "npy").string() + "/") != std::string::npos;
    })) << "no message names a file under " << cache_dir << " with the error\n" << failed.output;
    EXPECT_EQ(cache_entries(cache_dir), existing) << "a half-built cache or a temporary was left behind";
  }
  const CommandResult again = build_cache(cache_dir, 512, std::nullopt);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("building"), std::string::npos) << "the existing cache was damaged\n" << again.output;
}

}  // namespace
}  // namespace loom::test
