// The callback plugins (plugins/callback/ema, early-stopping, best-checkpoint), created by name through the
// host Registry from the built .so files and driven hook by hook, as the training loop will drive them:
//   - ema: the average of a seeded trajectory equals a plain PyTorch loop's (tests/python/ema_reference.py)
//     with and without warm-up and every 2nd step; a state_dict + on_resume continues it exactly; it is
//     what validation sees, and what the live model holds after the stage;
//   - early-stopping: patience in validation checks, min_delta, max mode, stopping_threshold, NaN, a
//     missing monitor, a resume mid-way, a new stage;
//   - best-checkpoint: the top-k files and best.pt of a scripted sequence, ties, NaN, per-stage reset and a
//     resume that prunes files the checkpoint does not know.
// The Control here is the test's own: clone_model() builds another registry `mlp`, save_weights() is the
// host's write_model().
#include "test_util.h"

#include "state/checkpoint.h"
#include "plugins/registry.h"
#include "plugins/run_context.h"

#include "common/npy/npy_tensor.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <functional>
#include <limits>
#include <set>

namespace loom::test {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

class TestControl final : public Control {
 public:
  TestControl(std::function<std::shared_ptr<Model>()> make_model, fs::path run_dir, Logger& logger)
      : make_model_(std::move(make_model)), run_dir_(std::move(run_dir)), logger_(logger) {}

  void stop_stage(const std::string& reason) override { stops.push_back(reason); }
  bool primary() const override { return is_primary; }
  void set_lr(std::optional<double> lr) override { lr_set.push_back(lr); }
  void scale_lr(double factor) override { lr_scales.push_back(factor); }
  std::shared_ptr<Model> clone_model(const Model& model) override {
    std::shared_ptr<Model> copy = make_model_();
    at::NoGradGuard no_grad;
    auto params = copy->named_parameters();
    auto buffers = copy->named_buffers();
    for (const auto& item : model.named_parameters()) params[item.key()].copy_(item.value());
    for (const auto& item : model.named_buffers()) buffers[item.key()].copy_(item.value());
    return copy;
  }
  fs::path save_weights(Model& model, const fs::path& relative) override {
    const fs::path file = run_dir_ / relative;
    if (!is_primary) return file;
    fs::create_directories(file.parent_path());
    host::write_model(file, model);
    return file;
  }
  void summarize(const std::string& key, const MetricValue& value) override { summary[key] = value; }
  Logger& logger() override { return logger_; }

  bool is_primary = true;
  std::vector<std::string> stops;
  std::vector<std::optional<double>> lr_set;
  std::vector<double> lr_scales;
  std::map<std::string, MetricValue> summary;

 private:
  std::function<std::shared_ptr<Model>()> make_model_;
  fs::path run_dir_;
  Logger& logger_;
};

class CallbackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = std::make_unique<host::Registry>();
    registry_->scan({LOOM_TEST_PLUGIN_DIR});
  }
  static void TearDownTestSuite() { registry_.reset(); }

  void SetUp() override {
    fs::create_directories(run_dir());
    const Params p = params_of(Kind::Dataset, "synthetic", {});
    dataset_ = registry_->create<Dataset>(*registry_->find(Kind::Dataset, "synthetic"), CreateContext{p, ctx_, nullptr});
  }

  static Params params_of(Kind kind, const std::string& name, const std::map<std::string, Value>& overrides) {
    const host::Feature* f = registry_->find(kind, name);
    if (!f) throw std::runtime_error(name + " plugin not built");
    std::map<std::string, Value> values;
    for (const auto& spec : f->info.params)
      if (spec.default_value) values[spec.name] = *spec.default_value;
    for (const auto& [k, v] : overrides) values[k] = v;
    return Params(values);
  }
  /// A small MLP with BatchNorm, so the EMA sees float buffers and an integer one.
  std::shared_ptr<Model> model() {
    const Params p = params_of(Kind::Model, "mlp", {{"hidden", std::vector<int64_t>{12}}, {"batchnorm", true}});
    return registry_->create<Model>(*registry_->find(Kind::Model, "mlp"), CreateContext{p, ctx_, dataset_});
  }
  std::shared_ptr<Callback> callback(const std::string& name, const std::map<std::string, Value>& overrides = {}) {
    const Params p = params_of(Kind::Callback, name, overrides);
    return registry_->create<Callback>(*registry_->find(Kind::Callback, name), CreateContext{p, ctx_, dataset_});
  }
  fs::path run_dir() const { return tmp_.path() / "run"; }

  static inline std::unique_ptr<host::Registry> registry_;
  TempDir tmp_;
  host::HostLogger logger_;
  host::HostRunContext ctx_{logger_, c10::kCPU, 1, 1, tmp_.path() / "run", tmp_.path() / "cache"};
  std::shared_ptr<Dataset> dataset_;
  TestControl control_{[this] { return model(); }, run_dir(), logger_};
};

/// Parameters then buffers, the order the EMA reference reads them in.
std::vector<at::Tensor> tensors_of(const Model& m) {
  std::vector<at::Tensor> all = m.parameters();
  for (const at::Tensor& b : m.buffers()) all.push_back(b);
  return all;
}

void expect_same_tensors(const Model& a, const Model& b, const std::string& what) {
  const auto ta = tensors_of(a), tb = tensors_of(b);
  ASSERT_EQ(ta.size(), tb.size()) << what;
  for (size_t i = 0; i < ta.size(); ++i) EXPECT_TRUE(torch::equal(ta[i], tb[i])) << what << ": tensor " << i;
}

// ---- ema ----------------------------------------------------------------------------------------------

class CallbackEma : public CallbackTest {
 protected:
  static constexpr int kSteps = 20;
  const StageInfo stage_{"supervised", 0, 2, kSteps};

  /// Seeded per-step deltas for every tensor: gradients for the float ones, +1 for the integer counter.
  std::vector<std::vector<at::Tensor>> trajectory(const Model& m) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(17);
    std::vector<std::vector<at::Tensor>> deltas(kSteps);
    for (auto& step : deltas)
      for (const at::Tensor& t : tensors_of(m))
        step.push_back(t.is_floating_point() ? at::randn(t.sizes(), gen) : at::ones_like(t));
    return deltas;
  }
  /// Steps [from, to) of the trajectory on `live`, each followed by on_optimizer_step.
  void run_steps(Callback& cb, Model& live, const std::vector<std::vector<at::Tensor>>& deltas, int from, int to) {
    for (int k = from; k < to; ++k) {
      {
        at::NoGradGuard no_grad;
        const auto live_tensors = tensors_of(live);
        for (size_t i = 0; i < live_tensors.size(); ++i) {
          if (live_tensors[i].is_floating_point())
            live_tensors[i].sub_(deltas[k][i], 0.1);
          else
            live_tensors[i].add_(deltas[k][i]);
        }
      }
      cb.on_optimizer_step(StepInfo{k + 1, 1, 0.1, torch::scalar_tensor(1.0, at::kDouble)}, live, control_);
    }
  }
};

TEST_F(CallbackEma, MatchesAPlainPyTorchLoop) {
  struct Case {
    double decay;
    bool warmup;
    int64_t every;
  };
  // decay 0.5 with warm-up: the warm-up decay (1 + t) / (10 + t) passes 0.5 at t = 8, so both regimes show.
  for (const Case c : {Case{0.5, true, 1}, Case{0.9, false, 1}, Case{0.5, true, 2}, Case{0.999, true, 1}}) {
    SCOPED_TRACE("decay " + std::to_string(c.decay) + " warmup " + std::to_string(c.warmup) + " every " +
                 std::to_string(c.every));
    const TempDir dir;
    const auto live = model();
    const auto deltas = trajectory(*live);
    const auto initial = tensors_of(*live);
    for (size_t i = 0; i < initial.size(); ++i) npy::save_tensor(dir / ("init_" + std::to_string(i) + ".npy"), initial[i]);
    for (int k = 0; k < kSteps; ++k)
      for (size_t i = 0; i < deltas[k].size(); ++i)
        npy::save_tensor(dir / ("delta_" + std::to_string(k + 1) + "_" + std::to_string(i) + ".npy"), deltas[k][i]);

    const auto ema = callback("ema", {{"decay", c.decay}, {"warmup", c.warmup}, {"every_n_steps", c.every}});
    ema->on_stage_start(stage_, *live, control_);
    run_steps(*ema, *live, deltas, 0, kSteps);

    const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR "/tests/python/ema_reference.py " +
                                 dir.path().string() + " --tensors " + std::to_string(initial.size()) + " --steps " +
                                 std::to_string(kSteps) + " --decay " + std::to_string(c.decay) + " --warmup " +
                                 std::to_string(int(c.warmup)) + " --every " + std::to_string(c.every));
    ASSERT_EQ(py.exit_code, 0) << py.output;
    Model* averaged = ema->eval_model(*live);
    ASSERT_NE(averaged, nullptr);
    const auto got = tensors_of(*averaged);
    for (size_t i = 0; i < got.size(); ++i) {
      const at::Tensor expected = npy::load_tensor(dir / ("expected_" + std::to_string(i) + ".npy"));
      ASSERT_EQ(expected.sizes(), got[i].sizes()) << "tensor " << i;
      if (!got[i].is_floating_point()) {
        EXPECT_TRUE(torch::equal(expected, got[i])) << "integer buffer " << i << " follows the live model";
        continue;
      }
      EXPECT_LE((expected - got[i]).abs().max().item<double>(), 1e-6) << "tensor " << i;
    }
    const int64_t updates = kSteps / c.every;
    const auto metrics = ema->epoch_metrics();
    EXPECT_EQ(std::get<int64_t>(metrics.at("ema_updates")), updates);
    const double t = static_cast<double>(updates - 1);
    EXPECT_DOUBLE_EQ(std::get<double>(metrics.at("ema_decay")), c.warmup ? std::min(c.decay, (1 + t) / (10 + t)) : c.decay);
  }
}

TEST_F(CallbackEma, ResumeContinuesLikeAnUninterruptedRun) {
  const auto start = model();
  const auto deltas = trajectory(*start);
  const std::map<std::string, Value> params{{"decay", 0.7}, {"every_n_steps", int64_t{3}}};

  const auto whole_live = control_.clone_model(*start);
  const auto whole = callback("ema", params);
  whole->on_stage_start(stage_, *whole_live, control_);
  run_steps(*whole, *whole_live, deltas, 0, kSteps);

  const auto live = control_.clone_model(*start);
  const auto first = callback("ema", params);
  first->on_stage_start(stage_, *live, control_);
  run_steps(*first, *live, deltas, 0, 8);
  const StateDict state = first->state_dict();
  EXPECT_EQ(state.at("updates").item<int64_t>(), 2);
  EXPECT_EQ(state.count("param/layers.0.weight"), 1u);
  EXPECT_EQ(state.count("buffer/layers.1.running_mean"), 1u);
  EXPECT_EQ(state.count("buffer/layers.1.num_batches_tracked"), 1u);

  const auto resumed = callback("ema", params);
  resumed->load_state_dict(state);
  resumed->on_resume(stage_, *live, control_);
  EXPECT_EQ(std::get<int64_t>(resumed->epoch_metrics().at("ema_updates")), 2);
  run_steps(*resumed, *live, deltas, 8, kSteps);

  expect_same_tensors(*resumed->eval_model(*live), *whole->eval_model(*whole_live), "resumed vs uninterrupted");
  EXPECT_EQ(resumed->epoch_metrics(), whole->epoch_metrics());
}

TEST_F(CallbackEma, ValidationSeesTheAverageAndTheStageEndsWithIt) {
  const auto live = model();
  const auto deltas = trajectory(*live);
  const auto ema = callback("ema", {{"decay", 0.9}});
  EXPECT_EQ(ema->epoch_metrics().at("ema_decay"), MetricValue()) << "no decay before the first update";
  ema->on_stage_start(stage_, *live, control_);
  run_steps(*ema, *live, deltas, 0, 5);

  Model* averaged = ema->eval_model(*live);
  ASSERT_NE(averaged, nullptr);
  EXPECT_NE(averaged, live.get());
  EXPECT_FALSE(averaged->is_training()) << "the average is evaluated in eval mode";
  EXPECT_FALSE(torch::equal(averaged->parameters()[0], live->parameters()[0]));
  const auto average = control_.clone_model(*averaged);

  ema->on_stage_end(stage_, *live, control_);
  expect_same_tensors(*live, *average, "the live model after apply_at_end");
  const auto saved = model();
  host::read_model(run_dir() / "model_ema.pt", *saved);
  expect_same_tensors(*saved, *average, "model_ema.pt");

  // A new stage averages from its own start.
  ema->on_stage_start(stage_, *live, control_);
  EXPECT_EQ(std::get<int64_t>(ema->epoch_metrics().at("ema_updates")), 0);
  expect_same_tensors(*ema->eval_model(*live), *live, "the average at a stage's start");
}

TEST_F(CallbackEma, OptionsLeaveValidationAndTheLiveModelAlone) {
  const auto live = model();
  const auto deltas = trajectory(*live);
  const auto ema = callback("ema", {{"evaluate", false}, {"apply_at_end", false}});
  ema->on_stage_start(stage_, *live, control_);
  run_steps(*ema, *live, deltas, 0, 5);
  EXPECT_EQ(ema->eval_model(*live), nullptr);
  const auto before = control_.clone_model(*live);
  control_.is_primary = false;
  ema->on_stage_end(stage_, *live, control_);
  expect_same_tensors(*live, *before, "the live model with apply_at_end = false");
  EXPECT_FALSE(fs::exists(run_dir() / "model_ema.pt")) << "only the primary rank writes files";
}

// ---- early-stopping -----------------------------------------------------------------------------------

class CallbackEarlyStopping : public CallbackTest {
 protected:
  const StageInfo stage_{"supervised", 0, 10, 100};

  static EpochReport report(int64_t epoch, const std::string& key, double value) {
    return EpochReport{"supervised", 0, epoch, epoch * 10,
                       {{key, value}, {"train_loss", 0.5}, {"note", std::string("text is not a number")}}};
  }
  /// Feeds `values` as epochs first_epoch, first_epoch + 1, …; returns the epoch that stopped (0: none).
  int64_t feed(Callback& cb, const std::vector<double>& values, const std::string& key = "val_loss",
               int64_t first_epoch = 1) {
    const auto live = model();
    for (size_t i = 0; i < values.size(); ++i) {
      const int64_t epoch = first_epoch + static_cast<int64_t>(i);
      cb.on_validation_end(report(epoch, key, values[i]), *live, control_);
      if (!control_.stops.empty()) return epoch;
    }
    return 0;
  }
  std::shared_ptr<Callback> started(const std::map<std::string, Value>& params) {
    auto cb = callback("early-stopping", params);
    const auto live = model();
    cb->on_stage_start(stage_, *live, control_);
    return cb;
  }
};

TEST_F(CallbackEarlyStopping, PatienceCountsValidationChecks) {
  EXPECT_EQ(feed(*started({}), {1.0, 0.8, 0.81, 0.82, 0.83, 0.5}), 5);
  ASSERT_EQ(control_.stops.size(), 1u);
  EXPECT_EQ(control_.stops[0],
            "early-stopping: val_loss did not improve by more than 0 for 3 validation checks (best 0.8 at epoch 2)");
}

TEST_F(CallbackEarlyStopping, MinDeltaDemandsAClearImprovement) {
  EXPECT_EQ(feed(*started({{"patience", int64_t{2}}}), {1.0, 0.96, 0.955, 0.95}), 0);
  EXPECT_EQ(feed(*started({{"patience", int64_t{2}}, {"min_delta", 0.05}}), {1.0, 0.96, 0.955, 0.95}), 3);
  EXPECT_EQ(control_.stops.at(0),
            "early-stopping: val_loss did not improve by more than 0.05 for 2 validation checks (best 1 at epoch 1)");
}

TEST_F(CallbackEarlyStopping, AccuracyIsMaximisedUnlessTold) {
  const std::vector<double> accuracy{0.5, 0.6, 0.55, 0.58, 0.59};
  EXPECT_EQ(feed(*started({{"monitor", std::string("val_accuracy")}}), accuracy, "val_accuracy"), 5);
  EXPECT_NE(control_.stops.at(0).find("(best 0.6 at epoch 2)"), std::string::npos) << control_.stops[0];
  control_.stops.clear();
  EXPECT_EQ(feed(*started({{"monitor", std::string("val_accuracy")}, {"mode", std::string("min")}}), accuracy,
                 "val_accuracy"),
            4);
}

TEST_F(CallbackEarlyStopping, StoppingThresholdEndsTheStageOnceReached) {
  EXPECT_EQ(feed(*started({}), {1.0, 0.5, 0.3, 0.2}), 0) << "no threshold by default";
  EXPECT_EQ(feed(*started({{"stopping_threshold", 0.3}}), {1.0, 0.5, 0.3, 0.2}), 3);
  EXPECT_EQ(control_.stops.at(0), "early-stopping: val_loss reached 0.3 at epoch 3 (stopping_threshold 0.3)");
}

TEST_F(CallbackEarlyStopping, NonFiniteMonitorStopsADivergedRun) {
  EXPECT_EQ(feed(*started({}), {1.0, kNaN, 0.5}), 2);
  EXPECT_EQ(control_.stops.at(0).rfind("early-stopping: val_loss is nan at epoch 2 — training diverged; lower [optimizer] lr", 0),
            0u)
      << control_.stops[0];
  control_.stops.clear();
  // Unchecked, NaN is just no improvement.
  EXPECT_EQ(feed(*started({{"check_finite", false}, {"patience", int64_t{2}}}), {1.0, kNaN, kNaN}), 3);
  EXPECT_NE(control_.stops.at(0).find("did not improve"), std::string::npos) << control_.stops[0];
}

TEST_F(CallbackEarlyStopping, MissingMonitorNamesTheKeysThereAre) {
  const auto cb = started({{"monitor", std::string("val_los")}});
  try {
    feed(*cb, {1.0});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "early-stopping: monitor 'val_los' is not in the epoch report of stage 'supervised'; its numeric "
              "metrics are: train_loss, val_loss — set monitor to one of them");
  }
}

TEST_F(CallbackEarlyStopping, StateRoundTripMidwayAndANewStageStartsOver) {
  const auto first = started({});
  EXPECT_EQ(feed(*first, {1.0, 0.8, 0.81}), 0);
  const StateDict state = first->state_dict();
  EXPECT_EQ(state.at("wait").item<int64_t>(), 1);

  const auto resumed = callback("early-stopping");
  resumed->load_state_dict(state);
  const auto live = model();
  resumed->on_resume(stage_, *live, control_);
  EXPECT_EQ(feed(*resumed, {0.82, 0.83}, "val_loss", 4), 5);
  EXPECT_NE(control_.stops.at(0).find("(best 0.8 at epoch 2)"), std::string::npos) << control_.stops[0];

  control_.stops.clear();
  resumed->on_stage_start(StageInfo{"round1/student", 1, 10, 100}, *live, control_);
  EXPECT_EQ(feed(*resumed, {0.9, 0.95, 0.96}), 0) << "the teacher's best and wait do not carry over";
}

// ---- best-checkpoint ----------------------------------------------------------------------------------

class CallbackBestCheckpoint : public CallbackTest {
 protected:
  /// Validates epochs first_epoch, … with `values`; the model's weights are all `tag + epoch`, so a saved
  /// file tells which epoch it holds.
  void feed(Callback& cb, const std::string& stage, const std::vector<double>& values, double tag = 0.0,
            int64_t first_epoch = 1, const std::string& key = "val_accuracy") {
    const auto live = model();
    for (size_t i = 0; i < values.size(); ++i) {
      const int64_t epoch = first_epoch + static_cast<int64_t>(i);
      {
        at::NoGradGuard no_grad;
        for (at::Tensor& p : live->parameters()) p.fill_(tag + static_cast<double>(epoch));
      }
      cb.on_validation_end(EpochReport{stage, 0, epoch, epoch * 10, {{key, values[i]}, {"val_loss", 0.3}}}, *live,
                           control_);
    }
  }
  void start(Callback& cb, const std::string& stage) {
    const auto live = model();
    cb.on_stage_start(StageInfo{stage, 0, 10, 100}, *live, control_);
  }
  std::set<std::string> files_in(const std::string& dir) const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(run_dir() / "checkpoints" / dir)) names.insert(e.path().filename().string());
    return names;
  }
  /// The epoch tag a saved weights file holds.
  double tag_of(const fs::path& file) {
    const auto m = model();
    host::read_model(file, *m);
    const at::Tensor first = m->parameters()[0];
    EXPECT_TRUE(torch::all(first == first.flatten()[0]).item<bool>()) << file;
    return first.flatten()[0].item<double>();
  }
  std::string summary_string(const std::string& key) const { return std::get<std::string>(control_.summary.at(key)); }
  int64_t summary_int(const std::string& key) const { return std::get<int64_t>(control_.summary.at(key)); }
  double summary_double(const std::string& key) const { return std::get<double>(control_.summary.at(key)); }

  const std::vector<double> accuracy_{0.5, 0.7, 0.6, 0.8, 0.65, 0.8, kNaN};
};

TEST_F(CallbackBestCheckpoint, KeepsTheTopKAndTheBestWithEarlierEpochsAheadOnTies) {
  const auto cb = callback("best-checkpoint", {{"save_top_k", int64_t{2}}});
  EXPECT_EQ(cb->best_model(), run_dir() / "best.pt");
  start(*cb, "supervised");
  feed(*cb, "supervised", accuracy_);
  EXPECT_EQ(files_in("supervised"),
            (std::set<std::string>{"epoch=4-val_accuracy=0.8000.pt", "epoch=6-val_accuracy=0.8000.pt"}));
  EXPECT_EQ(tag_of(run_dir() / "best.pt"), 4.0) << "epoch 6 ties epoch 4 and stays behind it";
  EXPECT_EQ(tag_of(run_dir() / "checkpoints/supervised/epoch=6-val_accuracy=0.8000.pt"), 6.0);
  EXPECT_EQ(summary_string("best_stage"), "supervised");
  EXPECT_EQ(summary_int("best_epoch"), 4);
  EXPECT_EQ(summary_string("best_monitor"), "val_accuracy");
  EXPECT_DOUBLE_EQ(summary_double("best_value"), 0.8);

  const StateDict state = cb->state_dict();
  EXPECT_TRUE(torch::equal(state.at("epochs"), torch::tensor({int64_t{4}, int64_t{6}})));
}

TEST_F(CallbackBestCheckpoint, EachStageKeepsItsOwnAndBestIsTheLastStagesBest) {
  const auto cb = callback("best-checkpoint", {{"save_top_k", int64_t{2}}});
  start(*cb, "supervised");
  feed(*cb, "supervised", accuracy_);
  start(*cb, "round1/student");
  feed(*cb, "round1/student", {0.3, 0.2, 0.25}, 100.0);
  EXPECT_EQ(files_in("round1-student"),
            (std::set<std::string>{"epoch=1-val_accuracy=0.3000.pt", "epoch=3-val_accuracy=0.2500.pt"}));
  EXPECT_EQ(files_in("supervised").size(), 2u) << "an earlier stage's files stay";
  EXPECT_EQ(tag_of(run_dir() / "best.pt"), 101.0);
  EXPECT_EQ(summary_string("best_stage"), "round1/student");
  EXPECT_EQ(summary_int("best_epoch"), 1);
}

TEST_F(CallbackBestCheckpoint, MinModeOnALoss) {
  const auto cb = callback("best-checkpoint", {{"monitor", std::string("val_loss")}});
  start(*cb, "supervised");
  feed(*cb, "supervised", {0.5, 0.4, 0.45}, 0.0, 1, "val_loss");
  EXPECT_EQ(files_in("supervised"), (std::set<std::string>{"epoch=2-val_loss=0.4000.pt"}));
  EXPECT_EQ(tag_of(run_dir() / "best.pt"), 2.0);
}

TEST_F(CallbackBestCheckpoint, ResumeKeepsTheListAndPrunesFilesTheCheckpointDoesNotKnow) {
  const auto whole = callback("best-checkpoint", {{"save_top_k", int64_t{2}}});
  start(*whole, "supervised");
  feed(*whole, "supervised", accuracy_);
  const auto expected = files_in("supervised");
  fs::remove_all(run_dir());

  const auto first = callback("best-checkpoint", {{"save_top_k", int64_t{2}}});
  start(*first, "supervised");
  feed(*first, "supervised", {accuracy_.begin(), accuracy_.begin() + 3});
  const StateDict state = first->state_dict();
  // What a process killed after saving epoch 4's file, but before its checkpoint, leaves behind.
  write_file(run_dir() / "checkpoints/supervised/epoch=4-val_accuracy=0.7900.pt", "stale");

  control_.summary.clear();
  const auto resumed = callback("best-checkpoint", {{"save_top_k", int64_t{2}}});
  resumed->load_state_dict(state);
  const auto live = model();
  resumed->on_resume(StageInfo{"supervised", 0, 10, 100}, *live, control_);
  EXPECT_EQ(files_in("supervised"),
            (std::set<std::string>{"epoch=2-val_accuracy=0.7000.pt", "epoch=3-val_accuracy=0.6000.pt"}));
  EXPECT_EQ(summary_int("best_epoch"), 2) << "the summary is restored with the list";
  feed(*resumed, "supervised", {accuracy_.begin() + 3, accuracy_.end()}, 0.0, 4);
  EXPECT_EQ(files_in("supervised"), expected);
  EXPECT_EQ(tag_of(run_dir() / "best.pt"), 4.0);
}

TEST_F(CallbackBestCheckpoint, OnlyThePrimaryRankWrites) {
  control_.is_primary = false;
  const auto cb = callback("best-checkpoint", {{"save_top_k", int64_t{2}}});
  start(*cb, "supervised");
  feed(*cb, "supervised", accuracy_);
  EXPECT_EQ(count_entries(run_dir()), 0u);
  EXPECT_EQ(summary_int("best_epoch"), 4) << "every rank keeps the same list";
}

TEST_F(CallbackBestCheckpoint, MissingMonitorNamesTheKeysThereAre) {
  const auto cb = callback("best-checkpoint", {{"monitor", std::string("val_acc")}});
  start(*cb, "supervised");
  try {
    feed(*cb, "supervised", {0.5});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "best-checkpoint: monitor 'val_acc' is not in the epoch report of stage 'supervised'; its numeric "
              "metrics are: val_accuracy, val_loss — set monitor to one of them");
  }
}

}  // namespace
}  // namespace loom::test
