// Stopping a run (SIGTERM, as Ctrl-C or a scheduler would) and resuming it gives exactly the weights of
// an uninterrupted run with the same seed: model, optimizer, LR schedule, data order, augmentation and
// dropout RNG all continue where they stopped — also from the middle of an epoch.
#include "run_util.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <spawn.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace loom::test {
namespace {

const std::string kSynthetic = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";

std::vector<std::string> run_args(const fs::path& out) {
  // Longer than the default test config so a signal lands mid-run; augmentation and dropout on so
  // their random streams must be restored too.
  return {LOOM_TEST_BIN, "run", kSynthetic, "--set", "run.output_dir=" + out.string(), "--set", "run.epochs=4",
          "--set", "dataset.samples=8192", "--set", "loader.batch_size=16"};
}

TEST(Resume, InterruptedAndResumedEqualsUninterrupted) {
  TempDir a, b;
  {
    const CommandResult r = run(command_line(run_args(a.path())));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  bool stopped = false;
  const int code = run_and_stop_after_first_checkpoint(run_args(b.path()), b.path() / "synthetic",
                                                       std::chrono::milliseconds(150), &stopped);  // into epoch 2
  ASSERT_TRUE(stopped) << "the run never wrote its first checkpoint";
  ASSERT_EQ(code, 143) << "expected the SIGTERM-stopped run to exit 143 (it may have finished before the signal)";
  const fs::path interrupted = only_run_dir(b.path(), "synthetic");
  ASSERT_FALSE(fs::exists(interrupted / "model.pt"));
  ASSERT_FALSE(fs::exists(interrupted / "summary.json"));

  const CommandResult resumed = loom("run --resume " + interrupted.string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming stage 'supervised'"), std::string::npos) << resumed.output;

  expect_same_weights(only_run_dir(a.path(), "synthetic") / "model.pt", interrupted / "model.pt");
  // Every epoch reported once, with the same numbers.
  const auto ma = read_epoch_records(only_run_dir(a.path(), "synthetic") / "metrics.jsonl");
  const auto mb = read_epoch_records(interrupted / "metrics.jsonl");
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    EXPECT_EQ(ma[i]["epoch"], mb[i]["epoch"]);
    EXPECT_EQ(ma[i]["optimizer_steps"], mb[i]["optimizer_steps"]);
    EXPECT_DOUBLE_EQ(ma[i]["train_loss"].get<double>(), mb[i]["train_loss"].get<double>()) << "epoch " << i + 1;
    EXPECT_DOUBLE_EQ(ma[i]["val_accuracy"].get<double>(), mb[i]["val_accuracy"].get<double>());
  }
}

TEST(Resume, SetCannotBeCombinedWithResume) {
  const CommandResult r = loom("run --resume /tmp --set run.epochs=2");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--set cannot be combined with --resume"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom::test
