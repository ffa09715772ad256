// Gradient accumulation: the plans of `fixed`, `schedule` and `target-batch` (exact weights, short and
// carried groups, epochs shorter than a group), and through the real `loom` binary: N micro-batches equal
// one batch of N·B, the LR follows optimizer steps, resume inside a group is exact, BatchNorm policies,
// and a cross-check against a Python loop written like the seed's with its bugs fixed.
#include "test_util.h"

#include "loop/optim.h"
#include "plugins/registry.h"
#include "config/resolve.h"
#include "plugins/run_context.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <csignal>
#include <fcntl.h>
#include <numeric>
#include <spawn.h>
#include <thread>

extern char** environ;

namespace loom::test {
namespace {

// --- plans, through the registry as a user reaches the plugins --------------------------------------

class Plans : public ::testing::Test {
 protected:
  void SetUp() override { registry.scan({LOOM_TEST_PLUGIN_DIR}); }

  std::shared_ptr<Accumulation> make(const std::string& name, std::map<std::string, Value> overrides) {
    const host::Feature* f = registry.find(Kind::Accumulation, name);
    EXPECT_NE(f, nullptr) << name;
    std::map<std::string, Value> values;
    for (const auto& spec : f->info.params)
      if (spec.default_value) values[spec.name] = *spec.default_value;
    for (auto& [k, v] : overrides) values[k] = v;
    params = Params(values);
    return registry.create<Accumulation>(*f, CreateContext{params, ctx, nullptr});
  }

  host::Registry registry;
  host::HostLogger logger;
  host::HostRunContext ctx{logger, c10::kCPU, 0, 1, {}, {}};
  Params params;
};

struct G {
  int64_t first, count;
  std::vector<double> w;
  bool step;
};

void expect_plan(const EpochPlan& plan, const std::vector<G>& expected) {
  ASSERT_EQ(plan.groups.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("group " + std::to_string(i));
    EXPECT_EQ(plan.groups[i].first, expected[i].first);
    EXPECT_EQ(plan.groups[i].count, expected[i].count);
    EXPECT_EQ(plan.groups[i].step, expected[i].step);
    ASSERT_EQ(plan.groups[i].loss_weights.size(), expected[i].w.size());
    for (size_t k = 0; k < expected[i].w.size(); ++k) EXPECT_DOUBLE_EQ(plan.groups[i].loss_weights[k], expected[i].w[k]);
  }
}

const std::vector<int64_t> kSizes = {4, 4, 4, 4, 4, 2};  // 22 samples, the last micro-batch short

TEST_F(Plans, FixedWeighsTheShortLastGroupBySamples) {
  auto a = make("fixed", {{"steps", int64_t{4}}});
  expect_plan(a->plan({0, 1, kSizes, 0}), {{0, 4, {.25, .25, .25, .25}, true}, {4, 2, {4. / 6, 2. / 6}, true}});
}

TEST_F(Plans, FixedDropsTheRemainder) {
  auto a = make("fixed", {{"steps", int64_t{4}}, {"partial_last", std::string("drop")}});
  expect_plan(a->plan({0, 1, kSizes, 0}), {{0, 4, {.25, .25, .25, .25}, true}});
}

TEST_F(Plans, FixedCarriesTheRemainderIntoTheNextEpoch) {
  auto a = make("fixed", {{"steps", int64_t{4}}, {"partial_last", std::string("carry")}});
  // epoch 0: [4 4 4 4] steps; [4 2] waits for the first two micro-batches of epoch 1 (4 + 4): 14 samples.
  expect_plan(a->plan({0, 3, kSizes, 0}), {{0, 4, {.25, .25, .25, .25}, true}, {4, 2, {4. / 14, 2. / 14}, false}});
  // epoch 1: [4 4] completes that group; [4 4 4 2] is a full group of 14 samples; nothing left over.
  expect_plan(a->plan({1, 3, kSizes, 2}),
              {{0, 2, {4. / 14, 4. / 14}, true}, {2, 4, {4. / 14, 4. / 14, 4. / 14, 2. / 14}, true}});
  // the last epoch cannot carry: its remainder steps on its own.
  expect_plan(a->plan({2, 3, kSizes, 4}), {{0, 4, {.25, .25, .25, .25}, true}, {4, 2, {4. / 6, 2. / 6}, true}});
}

TEST_F(Plans, EpochShorterThanAGroupStillSteps) {
  auto a = make("fixed", {{"steps", int64_t{8}}});
  expect_plan(a->plan({0, 2, {3, 2}, 0}), {{0, 2, {.6, .4}, true}});
}

TEST_F(Plans, EpochShorterThanAGroupCarriesAcrossEpochs) {
  auto a = make("fixed", {{"steps", int64_t{5}}, {"partial_last", std::string("carry")}});
  // A group of 5 micro-batches of 2 spans epochs 0, 1 and the first micro-batch of epoch 2.
  expect_plan(a->plan({0, 3, {2, 2}, 0}), {{0, 2, {.2, .2}, false}});
  expect_plan(a->plan({1, 3, {2, 2}, 0}), {{0, 2, {.2, .2}, false}});
  expect_plan(a->plan({2, 3, {2, 2}, 0}), {{0, 1, {.2}, true}, {1, 1, {1.0}, true}});
}

TEST_F(Plans, ScheduleByEpoch) {
  auto a = make("schedule", {{"by_epoch", IntMap{{0, 1}, {2, 3}}}});
  expect_plan(a->plan({1, 4, {4, 4, 4}, 0}), {{0, 1, {1.}, true}, {1, 1, {1.}, true}, {2, 1, {1.}, true}});
  expect_plan(a->plan({2, 4, {4, 4, 4}, 0}), {{0, 3, {1. / 3, 1. / 3, 1. / 3}, true}});
}

TEST_F(Plans, ScheduleAtOptimizerStep) {
  auto a = make("schedule", {{"at_step", IntMap{{2, 2}}}});
  // steps 0 and 1 take one micro-batch each; from step 2 on, two.
  expect_plan(a->plan({0, 1, {4, 4, 4, 4, 4, 4}, 0}),
              {{0, 1, {1.}, true}, {1, 1, {1.}, true}, {2, 2, {.5, .5}, true}, {4, 2, {.5, .5}, true}});
}

TEST_F(Plans, ScheduleRefusesBothKeys) {
  try {
    make("schedule", {{"by_epoch", IntMap{{0, 2}}}, {"at_step", IntMap{{0, 2}}}});
    FAIL() << "no error";
  } catch (const host::PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("set by_epoch or at_step, not both"), std::string::npos) << e.what();
  }
}

TEST_F(Plans, TargetBatchProbesTheLargestDivisorThatFits) {
  auto a = make("target-batch", {{"effective_batch_size", int64_t{48}}, {"memory_budget_mb", int64_t{10}}});
  std::vector<int64_t> probed;
  // Pretend each sample needs 1 MiB: 48, 24, 16, 12 exceed 10 MiB; 8 fits.
  const int64_t micro = a->micro_batch_size(128, [&](int64_t size) -> std::optional<int64_t> {
    probed.push_back(size);
    return size * 1024 * 1024;
  });
  EXPECT_EQ(micro, 8);
  EXPECT_EQ(probed, (std::vector<int64_t>{48, 24, 16, 12, 8}));
  const EpochPlan plan = a->plan({0, 1, std::vector<int64_t>(12, 8), 0});
  ASSERT_EQ(plan.groups.size(), 2u);
  EXPECT_EQ(plan.groups[0].count, 6);  // 6 × 8 = 48
  // The choice is checkpointed: a restored plugin does not probe again.
  auto b = make("target-batch", {{"effective_batch_size", int64_t{48}}});
  b->load_state_dict(a->state_dict());
  EXPECT_EQ(b->micro_batch_size(128, [](int64_t) -> std::optional<int64_t> { throw std::logic_error("probed"); }), 8);
}

TEST_F(Plans, TargetBatchRefusesANonDivisor) {
  try {
    make("target-batch", {{"effective_batch_size", int64_t{64}}, {"micro_batch", int64_t{48}}});
    FAIL() << "no error";
  } catch (const host::PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("micro_batch = 48 does not divide effective_batch_size = 64"), std::string::npos)
        << e.what();
  }
}

// --- through the real binary ----------------------------------------------------------------------

std::string base_config(const fs::path& out, int64_t samples, const std::string& extra) {
  return "[run]\nname = \"acc\"\nseed = 5\nepochs = 1\nthreads = 1\ndevice = \"cpu\"\noutput_dir = \"" + out.string() +
         "\"\n[dataset]\nplugin = \"synthetic\"\nsamples = " + std::to_string(samples) +
         "\nval_fraction = 0.0\ntest_samples = 16\nclasses = 4\n[model]\nplugin = \"mlp\"\nhidden = [32]\n"
         "[optimizer]\nname = \"sgd\"\n" + extra;
}

/// Runs loom on a config (whose output_dir is `dir`) written to `dir`; returns the run directory.
fs::path run_config(const TempDir& dir, const std::string& name, const std::string& text) {
  write_file(dir / (name + ".toml"), text);
  const CommandResult r = loom("run " + (dir / (name + ".toml")).string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return only_run_dir(dir.path(), "acc");
}

std::vector<at::Tensor> weights(const fs::path& run_dir) {
  torch::serialize::InputArchive archive;
  archive.load_from((run_dir / "model.pt").string());
  std::vector<at::Tensor> out;
  std::function<void(torch::serialize::InputArchive&)> collect = [&](torch::serialize::InputArchive& a) {
    for (const auto& key : a.keys()) {
      at::Tensor t;
      torch::serialize::InputArchive child;
      if (a.try_read(key, t)) out.push_back(t);
      else if (a.try_read(key, child)) collect(child);
    }
  };
  collect(archive);
  return out;
}

double relative_difference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b,
                           const std::vector<at::Tensor>& origin) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]).pow(2).sum().item<double>();
    norm += (b[i] - origin[i]).pow(2).sum().item<double>();
  }
  return std::sqrt(diff) / std::sqrt(norm);
}

TEST(AccumulationRun, MicroBatchesEqualOneLargeBatch) {
  TempDir a, b, c;
  // 64 samples, one optimizer step: 4 micro-batches of 16 vs one batch of 64; lr = 1 makes the weight
  // change the gradient itself, and an lr = 0 run gives the initial weights.
  const std::string lr1 = "lr = 1.0\nmomentum = 0.0\n";
  const auto acc = weights(run_config(a, "a", base_config(a.path(), 64, lr1 + "[loader]\nbatch_size = 16\n"
                                                          "[accumulation]\nplugin = \"fixed\"\nsteps = 4\n")));
  const auto one = weights(run_config(b, "b", base_config(b.path(), 64, lr1 + "[loader]\nbatch_size = 64\n")));
  const auto init = weights(run_config(c, "c", base_config(c.path(), 64, "lr = 0.0\nmomentum = 0.0\n[loader]\nbatch_size = 64\n")));
  ASSERT_EQ(acc.size(), one.size());
  EXPECT_LE(relative_difference(acc, one, init), 1e-6);
}

TEST(AccumulationRun, UnequalLastGroupAndUnevenMicroBatchesMatchSingleBatches) {
  TempDir a, b;
  // 100 samples, micro-batches of 12 (the ninth has 4), groups of 3 → groups of 36, 36, 28 samples, the
  // same partition as batches of 36; two epochs of SGD with momentum and a cosine schedule.
  const std::string common = "lr = 0.2\nmomentum = 0.9\n[lr_schedule]\nname = \"cosine\"\n";
  auto cfg = [&](const fs::path& out, const std::string& rest) {
    std::string t = base_config(out, 100, common + rest);
    return t.replace(t.find("epochs = 1"), 10, "epochs = 2");
  };
  const fs::path ra = run_config(a, "a", cfg(a.path(), "[loader]\nbatch_size = 12\n[accumulation]\nplugin = \"fixed\"\nsteps = 3\n"));
  const fs::path rb = run_config(b, "b", cfg(b.path(), "[loader]\nbatch_size = 36\n"));
  const auto wa = weights(ra), wb = weights(rb);
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(torch::allclose(wa[i], wb[i], 1e-5, 1e-6)) << "tensor " << i;
  // The LR schedule counts optimizer steps: 3 per epoch on both sides, and the logged LR is the
  // schedule's value at that count.
  const auto ma = read_epoch_records(ra / "metrics.jsonl"), mb = read_jsonl(rb / "metrics.jsonl");
  ASSERT_EQ(ma.size(), 2u);
  EXPECT_EQ(ma[0]["optimizer_steps"], 3);
  EXPECT_EQ(ma[1]["optimizer_steps"], 6);
  EXPECT_EQ(ma[0]["optimizer_steps"], mb[0]["optimizer_steps"]);
  std::map<std::string, Value> s;
  for (const auto& spec : host::lr_schedule_schema()) s[spec.name] = *spec.default_value;
  s["name"] = std::string("cosine");
  const host::LrSchedule schedule(Params(s), 0.2, 6);
  EXPECT_DOUBLE_EQ(ma[0]["lr"].get<double>(), schedule.lr(3));
  EXPECT_DOUBLE_EQ(ma[1]["lr"].get<double>(), schedule.lr(6));
  // The logged loss is the undivided per-sample mean: the same on both sides.
  EXPECT_NEAR(ma[0]["train_loss"].get<double>(), mb[0]["train_loss"].get<double>(), 1e-5);
}

int spawn_and_stop(const std::vector<std::string>& args, const fs::path& out, std::string* log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const fs::path log_file = out / "stderr.txt";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  bool stopped = false;
  int status = 0;
  for (int i = 0; i < 60000; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    std::error_code ec;
    if (!stopped && fs::exists(out / "acc", ec))
      for (const auto& e : fs::directory_iterator(out / "acc", ec))
        if (fs::exists(e.path() / "checkpoint.pt", ec)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20 + i % 7 * 13));
          kill(pid, SIGTERM);
          stopped = true;
        }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!WIFEXITED(status) && !WIFSIGNALED(status)) waitpid(pid, &status, 0);
  *log = read_file(log_file);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(AccumulationRun, ResumeInsideAGroupIsExact) {
  TempDir ref;
  // 750 micro-batches per epoch, groups of 7 carried across epochs: pending gradients at every epoch end.
  const std::string extra = "lr = 0.05\nmomentum = 0.9\n[loader]\nbatch_size = 8\n[accumulation]\nplugin = \"fixed\"\n"
                            "steps = 7\npartial_last = \"carry\"\n";
  auto cfg = [&](const fs::path& out) {
    std::string t = base_config(out, 6000, extra);
    t.replace(t.find("hidden = [32]"), 13, "hidden = [32]\ndropout = 0.2");
    t += "\n[[augmentation]]\nplugin = \"flip\"\n";
    return t.replace(t.find("epochs = 1"), 10, "epochs = 3");
  };
  const auto expected = weights(run_config(ref, "ref", cfg(ref.path())));
  // The stop lands wherever the signal does; retry until it lands inside a group (a micro-batch count
  // that is not a multiple of 7), which the first try almost always does.
  for (int attempt = 0; attempt < 4; ++attempt) {
    TempDir out;
    write_file(out / "c.toml", cfg(out.path()));
    std::string log;
    const int code = spawn_and_stop({LOOM_TEST_BIN, "run", (out / "c.toml").string()}, out.path(), &log);
    ASSERT_EQ(code, 143) << log;
    // "stopped in stage 'supervised' at epoch E, micro-batch K" (K counts within the epoch; a stop at an
    // epoch's end says "after epoch E" instead).
    const auto at = log.find(", micro-batch ");
    const int64_t micro = at == std::string::npos ? 0 : std::stoll(log.substr(at + 14));
    const bool inside_group = micro % 7 != 0;
    const fs::path run_dir = only_run_dir(out.path(), "acc");
    const CommandResult resumed = loom("run --resume " + run_dir.string());
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    const auto actual = weights(run_dir);
    ASSERT_EQ(actual.size(), expected.size());
    for (size_t i = 0; i < actual.size(); ++i) EXPECT_TRUE(torch::equal(actual[i], expected[i])) << "tensor " << i;
    if (inside_group) return;
  }
  ADD_FAILURE() << "the stop never landed inside a group in 4 tries";
}

TEST(AccumulationRun, BatchNormPolicies) {
  const std::string cnn = "lr = 0.05\n[loader]\nbatch_size = 16\n[accumulation]\nplugin = \"fixed\"\nsteps = 2\n";
  auto cfg = [&](const fs::path& out, const std::string& bn) {
    std::string t = base_config(out, 64, cnn + "bn = \"" + bn + "\"\n");
    const std::string mlp = "[model]\nplugin = \"mlp\"\nhidden = [32]";
    return t.replace(t.find(mlp), mlp.size(), "[model]\nplugin = \"cnn\"\nchannels = [4]\nhidden = 8");
  };
  {
    TempDir d;
    write_file(d / "c.toml", cfg(d.path(), "warn"));
    const CommandResult r = loom("run " + (d / "c.toml").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("accumulation does not enlarge its batch statistics"), std::string::npos) << r.output;
  }
  {
    TempDir d;
    write_file(d / "c.toml", cfg(d.path(), "error"));
    const CommandResult r = loom("run " + (d / "c.toml").string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("[accumulation] bn = \"error\" refuses this"), std::string::npos) << r.output;
  }
  {
    TempDir d;
    const fs::path run_dir = run_config(d, "c", cfg(d.path(), "freeze"));
    // Frozen BatchNorm never updates its running statistics: they are still the initial 0 and 1.
    torch::serialize::InputArchive archive;
    archive.load_from((run_dir / "model.pt").string());
    bool found = false;
    std::function<void(torch::serialize::InputArchive&, const std::string&)> walk =
        [&](torch::serialize::InputArchive& a, const std::string& prefix) {
          for (const auto& key : a.keys()) {
            at::Tensor t;
            torch::serialize::InputArchive child;
            if (a.try_read(key, t)) {
              if (key == "running_mean") {
                found = true;
                EXPECT_TRUE(torch::equal(t, torch::zeros_like(t))) << prefix;
              }
              if (key == "running_var") EXPECT_TRUE(torch::equal(t, torch::ones_like(t))) << prefix;
            } else if (a.try_read(key, child)) {
              walk(child, prefix + key + ".");
            }
          }
        };
    walk(archive, "");
    EXPECT_TRUE(found) << "no BatchNorm buffers in model.pt";
  }
}

TEST(AccumulationRun, TargetBatchProbesOnTheCpu) {
  TempDir d;
  const fs::path run_dir = run_config(
      d, "c", base_config(d.path(), 256, "lr = 0.1\n[accumulation]\nplugin = \"target-batch\"\neffective_batch_size = 64\n"));
  const auto m = read_epoch_records(run_dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0]["micro_batch_size"], 64);  // a tiny MLP: the whole effective batch fits the default budget
  EXPECT_EQ(m[0]["optimizer_steps"], 4);
  EXPECT_GT(m[0]["peak_memory_mb"].get<double>(), 0.0);
}

TEST(AccumulationRun, MatchesTheSeedLoopWithItsBugsFixed) {
  TempDir d;
  const std::string fraction = [] {
    std::ostringstream o;
    o.precision(17);
    o << 1000.0 / 55000.0;
    return o.str();
  }();
  const std::string cfg = "[run]\nname = \"acc\"\nseed = 3\nepochs = 2\nthreads = 1\ndevice = \"cpu\"\noutput_dir = \"" +
                          d.path().string() + "\"\n[loader]\nbatch_size = 32\n[dataset]\nplugin = \"fashion-mnist\"\n"
                          "labeled_fraction = " + fraction + "\n[model]\nplugin = \"mlp\"\nhidden = [64]\n"
                          "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n[lr_schedule]\nname = \"cosine\"\n"
                          "[accumulation]\nplugin = \"fixed\"\nsteps = 4\n";
  const fs::path run_dir = run_config(d, "c", cfg);
  const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " + LOOM_TEST_SOURCE_DIR +
                               "/tests/python/accumulation_reference.py --loom-model " + (run_dir / "model.pt").string() +
                               " --limit 1000 --batch 32 --steps 4 --epochs 2 --hidden 64 --seed 3 --lr 0.05");
  EXPECT_EQ(py.exit_code, 0) << py.output;
  EXPECT_NE(py.output.find("max relative weight difference"), std::string::npos) << py.output;
}

}  // namespace
}  // namespace loom::test
