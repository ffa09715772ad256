// Crash-only: a run killed with SIGKILL at any moment — mid-epoch, inside a checkpoint commit, inside a
// model write, during the final test — and then resumed ends with exactly the weights, metrics and
// summary of a run that was never interrupted. Plus what a user sees when a checkpoint is damaged, when a
// run never reached its first checkpoint, and when two processes want one run directory.
#include "run_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>

extern char** environ;

namespace loom::test {
namespace {

const std::string kSynthetic = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";

std::vector<std::string> run_args(const fs::path& out) {
  return {LOOM_TEST_BIN, "run", kSynthetic, "--set", "run.output_dir=" + out.string(), "--set", "run.epochs=4",
          "--set", "dataset.samples=16384", "--set", "loader.batch_size=8"};
}

/// Runs `args` with extra environment entries; kills it with SIGKILL after `kill_after` (if given).
/// Returns the wait status.
int spawn(const std::vector<std::string>& args, const std::vector<std::string>& env,
          std::optional<std::chrono::milliseconds> kill_after = std::nullopt) {
  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> all(env);
  for (char** e = environ; *e; ++e) all.emplace_back(*e);
  for (auto& e : all) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  if (kill_after) {
    std::this_thread::sleep_for(*kill_after);
    kill(pid, SIGKILL);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

/// The parts of a record that do not depend on timing.
nlohmann::json deterministic(nlohmann::json record) {
  for (const char* k : {"epoch_seconds", "samples_per_second", "peak_memory_mb", "wall_seconds", "run_dir"}) record.erase(k);
  return record;
}

/// The run directory under `runs_dir` (<output_dir>/<name>/), or empty while there is none.
fs::path only_run_dir_if_any(const fs::path& runs_dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(runs_dir, ec)) return e.path();
  return {};
}

struct Reference {
  TempDir dir;
  fs::path run;
  double seconds = 0;
  Reference() {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(WIFEXITED(spawn(run_args(dir.path()), {})));
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    run = only_run_dir(dir.path(), "synthetic");
  }
};

void expect_same_run(const fs::path& expected, const fs::path& actual, const std::string& what) {
  const auto wa = load_weights(expected / "model.pt"), wb = load_weights(actual / "model.pt");
  ASSERT_FALSE(wa.empty()) << what;
  ASSERT_EQ(wa.size(), wb.size()) << what;
  for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wb.at(name))) << what << ": " << name;
  const auto ma = read_jsonl(expected / "metrics.jsonl"), mb = read_jsonl(actual / "metrics.jsonl");
  ASSERT_EQ(ma.size(), mb.size()) << what << ": metrics.jsonl has " << mb.size() << " records, expected " << ma.size();
  for (size_t i = 0; i < ma.size(); ++i) EXPECT_EQ(deterministic(ma[i]), deterministic(mb[i])) << what << ": record " << i;
  const auto sa = nlohmann::json::parse(read_file(expected / "summary.json"));
  const auto sb = nlohmann::json::parse(read_file(actual / "summary.json"));
  EXPECT_EQ(deterministic(sa), deterministic(sb)) << what;
}

size_t lines_in(const fs::path& file) {
  std::ifstream in(file);
  return static_cast<size_t>(std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

/// When to kill: at a fault point (LOOM_FAULT_KILL), or `delay` after metrics.jsonl first holds `records`
/// lines (epoch ends), so the moments are spread over the run whatever the machine's speed.
struct KillPoint {
  std::string fault;
  size_t records = 0;
  std::chrono::milliseconds delay{0};
  std::string describe() const {
    return fault.empty() ? "SIGKILL " + std::to_string(delay.count()) + " ms after " + std::to_string(records) + " metric records"
                         : "LOOM_FAULT_KILL=" + fault;
  }
};

/// Kills a run at `point`, resumes it, and compares it with the uninterrupted reference. Returns whether
/// the run was really killed (a late moment may find it finished).
bool kill_resume_compare(const Reference& ref, const KillPoint& point) {
  const std::string what = point.describe();
  TempDir out;
  int status = 0;
  if (!point.fault.empty()) {
    status = spawn(run_args(out.path()), {"LOOM_FAULT_KILL=" + point.fault});
  } else {
    bool stopped = false;
    const int code = run_and_stop_when(
        run_args(out.path()),
        [&] {
          const fs::path dir = only_run_dir_if_any(out.path() / "synthetic");
          return !dir.empty() && fs::exists(dir / "config.resolved.toml") && lines_in(dir / "metrics.jsonl") >= point.records;
        },
        point.delay, &stopped, [](pid_t pid) { kill(pid, SIGKILL); });
    status = code == -1 ? SIGKILL : code << 8;
  }
  const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (!point.fault.empty()) EXPECT_TRUE(killed) << what << ": the fault point was never reached (status " << status << ")";
  fs::path dir = only_run_dir(out.path(), "synthetic");
  EXPECT_FALSE(dir.empty()) << what;
  if (dir.empty()) return killed;
  // summary.json is the run's last write: a kill that lands after it (between the summary and the
  // process's exit) found a finished run — nothing to resume, and it must equal the reference as it is.
  const bool finished_first = point.fault.empty() && killed && fs::exists(dir / "summary.json");
  if (killed && !finished_first) {
    EXPECT_FALSE(fs::exists(dir / "summary.json")) << what;
    CommandResult resumed = loom("run --resume " + dir.string());
    if (resumed.exit_code == 2 && resumed.output.find("never reached its first checkpoint") != std::string::npos) {
      // Killed in the first epoch: the run is started over, as the message says.
      resumed = loom("run " + (dir / "config.resolved.toml").string());
      const fs::path abandoned = dir;
      for (const auto& e : fs::directory_iterator(abandoned.parent_path()))
        if (e.path() != abandoned) dir = e.path();
      EXPECT_NE(dir, abandoned) << what;
    }
    EXPECT_EQ(resumed.exit_code, 0) << what << "\n" << resumed.output;
  }
  for (const auto& e : fs::recursive_directory_iterator(dir))
    EXPECT_NE(e.path().extension(), ".tmp") << what << ": " << e.path();
  expect_same_run(ref.run, dir, what);
  return killed && !finished_first;
}

TEST(Crash, KilledAtTwelveMomentsAndResumedEqualsUninterrupted) {
  Reference ref;
  ASSERT_FALSE(ref.run.empty());
  const auto records = read_epoch_records(ref.run / "metrics.jsonl");
  ASSERT_EQ(records.size(), 4u);
  const auto epoch = std::chrono::milliseconds(static_cast<int64_t>(records[0]["epoch_seconds"].get<double>() * 1000.0));
  const std::vector<KillPoint> points = {
      // Inside commits: each epoch's checkpoint (the 4th marks the stage done), the stage file, model.pt.
      {"checkpoint:1"}, {"checkpoint:2"}, {"checkpoint:4"}, {"model:1"}, {"model:2"},
      // Spread over the epochs: mid-epoch, right at an epoch's end (during its record and checkpoint), and
      // after the last epoch (the final test and summary).
      {"", 0, epoch / 2}, {"", 1, std::chrono::milliseconds(0)}, {"", 1, epoch / 2}, {"", 2, epoch / 4},
      {"", 2, epoch * 3 / 4}, {"", 3, epoch / 2}, {"", 4, std::chrono::milliseconds(0)},
  };
  int killed = 0;
  for (const KillPoint& p : points) killed += kill_resume_compare(ref, p);
  EXPECT_GE(killed, 10) << "fewer than 10 of the " << points.size() << " kills landed before the run ended";
}

TEST(Crash, ADamagedLatestCheckpointFallsBackToThePreviousOne) {
  TempDir out;
  bool stopped = false;
  ASSERT_EQ(run_and_stop_when(run_args(out.path()),
                              [&] { return some_run_has(out.path() / "synthetic", "checkpoint.prev.pt"); },
                              std::chrono::milliseconds(0), &stopped),
            143);
  const fs::path dir = only_run_dir(out.path(), "synthetic");
  // Flip bytes in the middle of the latest checkpoint (inside the tensors' data).
  {
    std::fstream f(dir / "checkpoint.pt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(dir / "checkpoint.pt") / 2));
    f.write("\xde\xad\xbe\xef", 4);
  }
  const CommandResult r = loom("run --resume " + dir.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("checkpoint.pt is unusable: its bytes do not match the checksum written with it"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("resuming from the previous checkpoint checkpoint.prev.pt"), std::string::npos) << r.output;
  Reference ref;
  expect_same_run(ref.run, dir, "fallback");
}

TEST(Crash, BothGenerationsDamagedIsRefusedWithHowToStartOver) {
  TempDir out;
  bool stopped = false;
  ASSERT_EQ(run_and_stop_when(run_args(out.path()),
                              [&] { return some_run_has(out.path() / "synthetic", "checkpoint.prev.pt"); },
                              std::chrono::milliseconds(0), &stopped),
            143);
  const fs::path dir = only_run_dir(out.path(), "synthetic");
  fs::resize_file(dir / "checkpoint.pt", 1000);
  write_file(dir / "checkpoint.prev.pt", "not a checkpoint");
  const CommandResult r = loom("run --resume " + dir.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("No usable checkpoint is left; start the run over with: loom run " +
                          (dir / "config.resolved.toml").string()),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;
}

TEST(Crash, ARunKilledBeforeItsFirstCheckpointSaysSo) {
  TempDir out;
  bool stopped = false;
  // SIGKILL as soon as the run directory has its config, long before the first epoch ends.
  run_and_stop_when(run_args(out.path()), [&] { return some_run_has(out.path() / "synthetic", "config.resolved.toml"); },
                    std::chrono::milliseconds(0), &stopped, [](pid_t pid) { kill(pid, SIGKILL); });
  ASSERT_TRUE(stopped);
  const fs::path dir = only_run_dir(out.path(), "synthetic");
  ASSERT_FALSE(dir.empty());
  ASSERT_FALSE(fs::exists(dir / "checkpoint.pt")) << "the first epoch ended within 300 ms; make the run longer";
  const CommandResult r = loom("run --resume " + dir.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("never reached its first checkpoint"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("loom run " + (dir / "config.resolved.toml").string()), std::string::npos) << r.output;
}

TEST(RunDirectory, ASecondProcessIsRefusedWhileTheFirstHoldsIt) {
  TempDir out;
  bool stopped = false;
  ASSERT_EQ(run_and_stop_after_first_checkpoint(run_args(out.path()), out.path() / "synthetic",
                                                std::chrono::milliseconds(50), &stopped),
            143);
  const fs::path dir = only_run_dir(out.path(), "synthetic");
  // Two resumes at once: exactly one proceeds, the other is told who holds the directory.
  const std::string cmd = std::string(LOOM_TEST_BIN) + " run --resume " + dir.string();
  const CommandResult both = run("(" + cmd + " > " + (out / "a.log").string() + " 2>&1 & " + cmd + " > " +
                                 (out / "b.log").string() + " 2>&1; wait)");
  const std::string a = read_file(out / "a.log"), b = read_file(out / "b.log");
  const bool a_refused = a.find("is in use by pid") != std::string::npos, b_refused = b.find("is in use by pid") != std::string::npos;
  EXPECT_TRUE(a_refused != b_refused) << "A:\n" << a << "\nB:\n" << b;
  EXPECT_EQ(read_epoch_records(dir / "metrics.jsonl").size(), 4u);
}

TEST(RunDirectory, RunsStartedInTheSameSecondGetTheirOwnDirectories) {
  TempDir out;
  std::string cmd = command_line(run_args(out.path()));
  cmd += "--set run.epochs=1 --set dataset.samples=512";
  const CommandResult r = run("(" + cmd + " >/dev/null 2>&1 & " + cmd + " >/dev/null 2>&1 & " + cmd + " >/dev/null 2>&1; wait)");
  size_t dirs = 0;
  for (const auto& e : fs::directory_iterator(out / "synthetic")) {
    ++dirs;
    EXPECT_EQ(read_epoch_records(e.path() / "metrics.jsonl").size(), 1u) << e.path();
  }
  EXPECT_EQ(dirs, 3u);
}

TEST(Divergence, NonFiniteWeightsEndTheRunWithAClearError) {
  // A model whose 5th forward returns infinite logits: under fp32 (no loss scaler to skip the step) the
  // step applies NaN gradients, as a real divergence would.
  TempDir out;
  std::string text = read_file(kSynthetic);
  const size_t model = text.find("[model]");
  text = text.substr(0, model) + "[model]\nplugin = \"fixture-faulty\"\nfailure = \"inf\"\nfail_rank = 0\nfail_at_forward = 5\n" +
         text.substr(text.find("\n[", model + 1) + 1);
  text.replace(text.find("[run]\n"), 6, "[run]\nplugin_paths = [\"" LOOM_TEST_FAULTY_MODEL_DIR "\"]\n");
  write_file(out / "c.toml", text);
  const CommandResult r = loom("run " + (out / "c.toml").string() + " --set run.output_dir=" + out.path().string() +
                               " --set run.epochs=2");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("diverged in epoch"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(only_run_dir(out.path(), "synthetic") / "summary.json"));
}

}  // namespace
}  // namespace loom::test
