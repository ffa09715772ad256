// Data-parallel training with the mpi communicator: real `loom` processes under mpirun (2 ranks, one
// intra-op thread each) against single-process runs of the same config.
#include "run_util.h"
#include "test_util.h"

#include "loop/loader.h"

#include <ATen/ATen.h>

#include <gtest/gtest.h>

#include <chrono>

namespace loom::test {
namespace {

const std::string kMpirun = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/distributed/mpirun.sh";

// No dropout and no augmentation: two ranks of B samples must compute exactly what one process of 2B does.
// 1000 training samples do not divide into batches of 32, so the short tail (and its uneven split between
// the ranks) is exercised too.
const std::string kConfig = R"(
[run]
name = "ddp"
seed = 3
epochs = 2
threads = 1
device = "cpu"

[loader]
batch_size = 32
prefetch = 0

[dataset]
plugin = "synthetic"
samples = 1112
test_samples = 128
val_fraction = 0.1
classes = 4
noise = 2.5

@MODEL@
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9

[lr_schedule]
name = "cosine"
warmup_steps = 3
)";

bool mpi_available() { return run("command -v mpirun").exit_code == 0; }

const std::string kMlp = "[model]\nplugin = \"mlp\"\nhidden = [32]\ndropout = 0.0\n";
// A linear model that misbehaves on rank 1 (tests/fixtures/faulty_model.cpp).
std::string faulty(const std::string& failure, int at_forward) {
  return "[model]\nplugin = \"fixture-faulty\"\nfailure = \"" + failure + "\"\nfail_rank = 1\nfail_at_forward = " +
         std::to_string(at_forward) + "\n";
}

struct Runs {
  TempDir dir;
  fs::path config() const { return dir / "ddp.toml"; }
  explicit Runs(const std::string& model = kMlp) {
    std::string text = kConfig;
    text.replace(text.find("@MODEL@"), 7, model);
    if (model != kMlp) text.replace(text.find("[run]\n"), 6, "[run]\nplugin_paths = [\"" LOOM_TEST_FAULTY_MODEL_DIR "\"]\n");
    write_file(dir / "ddp.toml", text);
  }

  CommandResult single(const std::string& out, const std::string& sets) const {
    return loom("run " + config().string() + " --set run.output_dir=" + (dir / out).string() + " " + sets);
  }
  CommandResult ranks(int n, const std::string& out, const std::string& sets, const std::string& env = "") const {
    return run(env + " bash " + kMpirun + " -np " + std::to_string(n) + " " LOOM_TEST_BIN " run " + config().string() +
               " --set run.output_dir=" + (dir / out).string() + " --set communicator.plugin=mpi " + sets);
  }
};

void expect_same_weights(const fs::path& a, const fs::path& b, double rel) {
  const auto wa = load_weights(a / "model.pt");
  const auto wb = load_weights(b / "model.pt");
  ASSERT_EQ(wa.size(), wb.size());
  ASSERT_FALSE(wa.empty());
  for (const auto& [name, t] : wa) {
    const at::Tensor& u = wb.at(name);
    const double diff = (t - u).abs().max().item<double>();
    const double scale = std::max(t.abs().max().item<double>(), 1e-12);
    EXPECT_LE(diff / scale, rel) << name;
  }
}

// The shards of all ranks are disjoint, cover the epoch, and together form each global micro-batch; a
// short tail splits as evenly as it can (a rank may get an empty micro-batch, never a missing one).
TEST(Sharding, RanksSplitEachGlobalMicroBatchDisjointlyAndCoverTheEpoch) {
  for (int world : {1, 2, 3, 4}) {
    for (int64_t n : {0, 1, 5, 64, 100, 1001}) {
      const at::Tensor order = at::randperm(n, at::kLong);
      const auto sizes = host::micro_batch_sizes(n, 8 * world);
      std::vector<host::Shard> shards;
      for (int r = 0; r < world; ++r) shards.push_back(host::shard_epoch(order, sizes, r, world));
      at::Tensor seen = at::zeros({n}, at::kLong);
      int64_t start = 0;
      for (size_t k = 0; k < sizes.size(); ++k) {
        std::vector<at::Tensor> parts;
        for (int r = 0; r < world; ++r) {
          ASSERT_EQ(shards[r].sizes.size(), sizes.size());
          int64_t offset = 0;
          for (size_t j = 0; j < k; ++j) offset += shards[r].sizes[j];
          const int64_t size = shards[r].sizes[k];
          EXPECT_LE(size, 8);
          EXPECT_GE(size, sizes[k] / world);
          parts.push_back(shards[r].order.narrow(0, offset, size));
        }
        // Rank blocks in rank order are exactly global micro-batch k.
        EXPECT_TRUE(at::equal(at::cat(parts), order.narrow(0, start, sizes[k]))) << "world " << world << " n " << n;
        start += sizes[k];
      }
      for (const auto& shard : shards) seen.index_add_(0, shard.order, at::ones({shard.order.size(0)}, at::kLong));
      EXPECT_TRUE(at::equal(seen, at::ones({n}, at::kLong))) << "world " << world << " n " << n;
    }
  }
}

class Distributed : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!mpi_available()) GTEST_SKIP() << "mpirun not installed (scripts/setup.sh installs openmpi-bin)";
  }
};

TEST_F(Distributed, TwoRanksOfBMatchOneProcessOf2B) {
  Runs r;
  const auto one = r.single("one", "--set loader.batch_size=32");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  // verify_replicas: every rank compares a checksum of its weights after every optimizer step.
  const auto two = r.ranks(2, "two", "--set loader.batch_size=16 --set run.verify_replicas=true");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  expect_same_weights(only_run_dir(r.dir / "one", "ddp"), only_run_dir(r.dir / "two", "ddp"), 1e-5);

  // Rank 0 alone writes: one run directory, and the epoch records cover the whole epoch.
  const fs::path run_dir = only_run_dir(r.dir / "two", "ddp");
  ASSERT_FALSE(run_dir.empty()) << "expected exactly one run directory";
  const auto records = read_epoch_records(run_dir / "metrics.jsonl");
  ASSERT_EQ(records.size(), 2u);
  const auto single_records = read_epoch_records(only_run_dir(r.dir / "one", "ddp") / "metrics.jsonl");
  EXPECT_EQ(records[0]["optimizer_steps"], single_records[0]["optimizer_steps"]);
  EXPECT_NEAR(records[1]["train_loss"].get<double>(), single_records[1]["train_loss"].get<double>(), 1e-5);
  EXPECT_NEAR(records[1]["val_accuracy"].get<double>(), single_records[1]["val_accuracy"].get<double>(), 1e-9);
  const auto summary = nlohmann::json::parse(read_file(run_dir / "summary.json"));
  EXPECT_EQ(summary["world_size"], 2);
  EXPECT_EQ(summary["test_samples"], 128);
}

// Every rank runs the callbacks on identical reports, and they agree at a group boundary: both stop after
// the same epoch, with EMA evaluated on every rank alike.
TEST_F(Distributed, EarlyStoppingStopsEveryRankAtTheSameEpoch) {
  Runs r;
  write_file(r.config(), read_file(r.config()) +
                             "\n[[callback]]\nplugin = \"ema\"\ndecay = 0.9\n"
                             "[[callback]]\nplugin = \"early-stopping\"\nmonitor = \"train_loss\"\nmode = \"max\"\npatience = 2\n");
  const auto two = r.ranks(2, "two", "--set run.epochs=6 --set loader.batch_size=16 --set run.verify_replicas=true");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const fs::path run_dir = only_run_dir(r.dir / "two", "ddp");
  // train_loss falls every epoch, so mode = "max" keeps epoch 1 best: patience 2 ends the stage after epoch 3.
  EXPECT_EQ(read_epoch_records(run_dir / "metrics.jsonl").size(), 3u);
  const auto summary = nlohmann::json::parse(read_file(run_dir / "summary.json"));
  EXPECT_EQ(summary["supervised/stopped_epoch"], 3) << summary.dump(2);
  EXPECT_EQ(summary["world_size"], 2);
}

TEST_F(Distributed, WithAccumulationTheGroupIsGlobal) {
  Runs r;
  const auto one = r.single("one", "--set loader.batch_size=16 --set accumulation.plugin=fixed --set accumulation.steps=3");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const auto two = r.ranks(2, "two",
                           "--set loader.batch_size=8 --set accumulation.plugin=fixed --set accumulation.steps=3 "
                           "--set run.verify_replicas=true");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  expect_same_weights(only_run_dir(r.dir / "one", "ddp"), only_run_dir(r.dir / "two", "ddp"), 1e-5);
}

TEST_F(Distributed, InfOnOneRankSkipsTheStepOnBoth) {
  // fp16 loss scaling skips a step whenever a gradient overflows. Rank 1 alone returns infinite logits once;
  // both ranks must skip exactly one step more than a run without the fault (verify_replicas proves they
  // skipped the same one: their weights agree after every step).
  const std::string sets = "--set loader.batch_size=16 --set precision.plugin=amp-fp16 --set run.epochs=1 "
                           "--set run.verify_replicas=true";
  Runs healthy(faulty("inf", 1000000));
  const auto base = healthy.ranks(2, "two", sets);
  ASSERT_EQ(base.exit_code, 0) << base.output;
  Runs r(faulty("inf", 2));
  const auto two = r.ranks(2, "two", sets);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto expected = read_epoch_records(only_run_dir(healthy.dir / "two", "ddp") / "metrics.jsonl");
  const auto records = read_epoch_records(only_run_dir(r.dir / "two", "ddp") / "metrics.jsonl");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["skipped_steps"].get<double>(), expected[0]["skipped_steps"].get<double>() + 1.0)
      << records[0].dump() << "\n" << expected[0].dump();
  EXPECT_EQ(records[0]["optimizer_steps"].get<int64_t>(), expected[0]["optimizer_steps"].get<int64_t>() - 1);
}

TEST_F(Distributed, AHungRankEndsTheOthersWithinTheTimeout) {
  Runs r(faulty("hang", 40));
  const auto start = std::chrono::steady_clock::now();
  const auto two = r.ranks(2, "two", "--set loader.batch_size=16 --set communicator.timeout_s=3");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("rank 1"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("timed out"), std::string::npos) << two.output;
  EXPECT_LT(seconds, 60.0);
  // The hang came after the first epoch (35 micro-batches of 16 per rank): its checkpoint is intact.
  const fs::path run_dir = only_run_dir(r.dir / "two", "ddp");
  ASSERT_FALSE(run_dir.empty());
  EXPECT_TRUE(fs::exists(run_dir / "checkpoint.pt"));
}

TEST_F(Distributed, ADeadRankEndsTheJob) {
  Runs r(faulty("die", 40));
  const auto start = std::chrono::steady_clock::now();
  const auto two = r.ranks(2, "two", "--set loader.batch_size=16 --set communicator.timeout_s=5");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("rank 1"), std::string::npos) << two.output;
  EXPECT_LT(seconds, 60.0);
  const fs::path run_dir = only_run_dir(r.dir / "two", "ddp");
  ASSERT_FALSE(run_dir.empty());
  EXPECT_TRUE(fs::exists(run_dir / "checkpoint.pt"));
}

TEST_F(Distributed, ResumeOnTheSameWorldSizeIsExact) {
  Runs r;
  // 16 epochs of ~0.05 s each: the stop requested after the first checkpoint lands well before the end.
  const auto full = r.ranks(2, "full", "--set loader.batch_size=16 --set run.epochs=16");
  ASSERT_EQ(full.exit_code, 0) << full.output;

  // SIGTERM to both ranks (the loom processes with this run's output directory on their command lines,
  // not mpirun, which would end the job) once the
  // first checkpoint exists: the ranks agree to stop at the same group boundary and rank 0 checkpoints.
  const fs::path out = r.dir / "part";
  const std::string cmd = "bash " + kMpirun + " -np 2 " LOOM_TEST_BIN " run " + r.config().string() +
                          " --set run.output_dir=" + out.string() +
                          " --set communicator.plugin=mpi --set loader.batch_size=16 --set run.epochs=16";
  std::vector<std::string> args = {"/bin/sh", "-c", cmd};
  bool stopped = false;
  const int code = run_and_stop_when(
      args, [&] { return some_run_has(out / "ddp", "checkpoint.pt"); },
      std::chrono::milliseconds(0), &stopped,
      [&](pid_t) { run("pkill -TERM -f -- '^" LOOM_TEST_BIN " run .*run.output_dir=" + out.string() + " '"); });
  ASSERT_TRUE(stopped);
  const fs::path part = only_run_dir(out, "ddp");
  ASSERT_FALSE(part.empty());
  ASSERT_NE(code, 0) << "the stop request must end the run early (exit 143 from the ranks)";
  ASSERT_FALSE(fs::exists(part / "model.pt"));
  const auto resumed = run("bash " + kMpirun + " -np 2 " LOOM_TEST_BIN " run --resume " + part.string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  expect_same_weights(only_run_dir(r.dir / "full", "ddp"), part, 1e-6);
}

/// A metric record without what depends on timing.
nlohmann::json timeless(nlohmann::json record) {
  for (const char* k : {"epoch_seconds", "samples_per_second", "peak_memory_mb", "wall_seconds", "wall_time", "time",
                        "grad_allreduce_seconds", "run_dir"})
    record.erase(k);
  return record;
}

// The running sums of the epoch in progress are per rank; a stop inside an epoch saves every rank's
// ("epoch_sums"), so the resumed epoch's train_loss and train_accuracy are the uninterrupted run's, bit for
// bit, like the weights.
TEST_F(Distributed, StoppedMidEpochAndResumedEqualsUninterruptedInEveryRecord) {
  Runs r;
  // Epochs long enough (~0.3 s) for a stop half an epoch after the first checkpoint to land inside one.
  const std::string sets = "--set loader.batch_size=16 --set run.epochs=4 --set dataset.samples=40000";
  const auto full = r.ranks(2, "full", sets);
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const fs::path expected = only_run_dir(r.dir / "full", "ddp");
  const auto records = read_epoch_records(expected / "metrics.jsonl");
  ASSERT_EQ(records.size(), 4u);
  const auto epoch = std::chrono::milliseconds(static_cast<int64_t>(records[1]["epoch_seconds"].get<double>() * 1000.0));

  // Half an epoch after the first checkpoint: inside epoch 2 (retried, later, should a stop land on an
  // epoch's end, which would not exercise the sums).
  fs::path part;
  for (int attempt = 0; attempt < 3 && part.empty(); ++attempt) {
    const fs::path out = r.dir / ("part" + std::to_string(attempt));
    const std::string cmd = "bash " + kMpirun + " -np 2 " LOOM_TEST_BIN " run " + r.config().string() +
                            " --set run.output_dir=" + out.string() + " --set communicator.plugin=mpi " + sets;
    bool stopped = false;
    const int code = run_and_stop_when(
        {"/bin/sh", "-c", cmd}, [&] { return some_run_has(out / "ddp", "checkpoint.pt"); }, epoch / 2, &stopped,
        [&](pid_t) { run("pkill -TERM -f -- '^" LOOM_TEST_BIN " run .*run.output_dir=" + out.string() + " '"); });
    ASSERT_TRUE(stopped);
    if (code == 0) continue;  // the run finished before the stop arrived: try again
    EXPECT_EQ(code, 143) << "SIGTERM ends the ranks with 143";
    const fs::path dir = only_run_dir(out, "ddp");
    ASSERT_FALSE(dir.empty());
    if (read_file(dir / "loom.log").find(", micro-batch ") != std::string::npos) part = dir;  // "stopped … at epoch E, micro-batch M"
  }
  ASSERT_FALSE(part.empty()) << "no stop landed inside an epoch";
  const auto resumed = run("bash " + kMpirun + " -np 2 " LOOM_TEST_BIN " run --resume " + part.string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  expect_same_weights(expected, part, 0.0);
  const auto ma = read_jsonl(expected / "metrics.jsonl"), mb = read_jsonl(part / "metrics.jsonl");
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i) EXPECT_EQ(timeless(ma[i]), timeless(mb[i])) << "record " << i;
}

}  // namespace
}  // namespace loom::test
