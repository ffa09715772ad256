// The mixed-precision plugins (plugins/precision/amp-bf16, amp-fp16), created through the registry like
// the host does:
//   - amp-fp16's loss scaler against Python's torch.amp.GradScaler (same torch install, CPU): the same
//     gradients with injected inf/NaN give the same scale trajectory, growth tracker, skipped steps,
//     unscaled gradients and weights, bit for bit;
//   - the scale survives a state_dict round trip and a SIGTERM + --resume exactly;
//   - an overflow never writes NaN into the weights, and a skipped step never advances the LR schedule;
//   - autocast scopes give PyTorch's dtypes and restore autocast's state on every way out;
//   - amp-bf16 trains the quickstart model to within a point of fp32's accuracy (reduced setting).
#include "run_util.h"

#include "plugins/registry.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <spawn.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace loom::test {
namespace {

// A small CPU run of its own (the shape of tests/configs/synthetic.toml): 1024 synthetic samples, 10% for
// validation → 922 to train on → 29 micro-batches of 32 → 29 optimizer steps per epoch.
const char* const kSyntheticToml = R"(
[run]
name = "synthetic"
seed = 7
epochs = 3
threads = 1
device = "cpu"

[loader]
batch_size = 32
prefetch = 2

[dataset]
plugin = "synthetic"
samples = 1024
test_samples = 256
classes = 4
noise = 0.8

[model]
plugin = "mlp"
hidden = [64]
dropout = 0.1

[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9

[lr_schedule]
name = "cosine"
warmup_steps = 5
)";

/// Writes the config above into `dir` and returns its path.
std::string synthetic_config(const TempDir& dir) {
  write_file(dir / "synthetic.toml", kSyntheticToml);
  return (dir / "synthetic.toml").string();
}
const std::string kQuickstart = std::string(LOOM_TEST_SOURCE_DIR) + "/configs/quickstart.toml";

// ---------------------------------------------------------------------------------------------------
// Creating precision plugins through the registry, with a logger the tests can read.
// ---------------------------------------------------------------------------------------------------

class CapturingLogger final : public Logger {
 public:
  void log(LogLevel level, std::string_view message) override {
    if (level == LogLevel::Warn) warnings.emplace_back(message);
  }
  std::vector<std::string> warnings;
};

class TestRunContext final : public RunContext {
 public:
  Logger& logger() override { return logger_; }
  c10::Device device() const override { return c10::kCPU; }
  uint64_t seed() const override { return 0; }
  int threads() const override { return 1; }
  at::Generator generator(std::string_view) const override { return at::make_generator<at::CPUGeneratorImpl>(0); }
  fs::path run_dir() const override { return {}; }
  fs::path cache_dir() const override { return fs::temp_directory_path() / "loom-test-cache"; }
  std::unique_ptr<ProgressReporter> progress(std::string_view, int64_t) override {
    struct Silent final : ProgressReporter {
      void advance(int64_t) override {}
      void finish() override {}
    };
    return std::make_unique<Silent>();
  }
  CapturingLogger logger_;
};

class PrecisionPlugins : public ::testing::Test {
 public:
  static double scale_of(const Precision& p) { return p.state_dict().at("scale").item<double>(); }
  static int64_t tracker_of(const Precision& p) { return p.state_dict().at("growth_tracker").item<int64_t>(); }

 protected:
  static void SetUpTestSuite() {
    registry_ = new host::Registry();
    registry_->scan({LOOM_TEST_PLUGIN_DIR});
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  /// The plugin `name` with its schema defaults, overridden by `overrides`.
  std::shared_ptr<Precision> make(const std::string& name, const std::map<std::string, Value>& overrides = {}) {
    const host::Feature* f = registry_->find(Kind::Precision, name);
    if (!f) {
      ADD_FAILURE() << "precision plugin '" << name << "' not built";
      return nullptr;
    }
    std::map<std::string, Value> values;
    for (const auto& spec : f->info.params)
      if (spec.default_value) values[spec.name] = *spec.default_value;
    for (const auto& [k, v] : overrides) {
      EXPECT_TRUE(values.count(k)) << name << " has no parameter '" << k << "'";
      values[k] = v;
    }
    params_.push_back(std::make_unique<Params>(values));
    return registry_->create<Precision>(*f, CreateContext{*params_.back(), ctx_, nullptr});
  }

  static host::Registry* registry_;
  TestRunContext ctx_;
  std::vector<std::unique_ptr<Params>> params_;
};
host::Registry* PrecisionPlugins::registry_ = nullptr;

// ---------------------------------------------------------------------------------------------------
// amp-fp16's scaler against torch.amp.GradScaler
// ---------------------------------------------------------------------------------------------------

// One optimizer step of the hand-made problem: loss_k = (w · c_k).sum() * weight_k per micro-batch, so
// the unscaled gradient of w is exactly Σ weight_k c_k, and inf/NaN can be put in where we want it.
struct Micro {
  std::vector<float> c;
  double weight;
};
using Script = std::vector<std::vector<Micro>>;

const std::vector<float> kInitialW = {0.5f, -0.25f, 1.0f, 2.0f, -1.5f};
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

Script scaler_script() {
  Script s;
  for (int k = 0; k < 16; ++k) {
    std::vector<float> c(5);
    for (int i = 0; i < 5; ++i) c[static_cast<size_t>(i)] = 0.125f * static_cast<float>((k + 1) * (i - 2)) + 0.0625f;
    std::vector<Micro> step = {{c, 1.0}};
    if (k % 4 == 1) {  // two micro-batches accumulated into one step: unscaled once
      std::vector<float> c2 = c;
      for (float& x : c2) x = -0.5f * x + 0.25f;
      step = {{c, 0.75}, {c2, 0.25}};
    }
    s.push_back(step);
  }
  s[3][0].c[2] = kInf;         // inf in a gradient → skip, backoff
  s[5][1].c[0] = kNaN;         // NaN in the second micro-batch of an accumulated step
  s[8][0].c[4] = 3.0e34f;      // finite, but × the loss scale it overflows float32: a real "scale too big"
  s[12][0].c[1] = -kInf;       // two skips in a row
  s[13][0].c[3] = kNaN;
  return s;
}

struct StepRecord {
  bool skipped = false;
  double scale = 0.0;
  int64_t tracker = 0;
  std::vector<double> grad, w;
};

bool same_value(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

std::string hex(double x) {
  if (std::isnan(x)) return "float('nan')";
  if (std::isinf(x)) return x > 0 ? "float('inf')" : "float('-inf')";
  char buf[64];
  std::snprintf(buf, sizeof buf, "float.fromhex('%a')", x);
  return buf;
}

std::vector<StepRecord> python_grad_scaler(const Script& script, int growth_interval, const std::string& device) {
  std::string py = "import torch\n"
                   "torch.set_num_threads(1)\n"
                   "w = torch.nn.Parameter(torch.tensor([";
  for (float x : kInitialW) py += hex(x) + ",";
  py += "], dtype=torch.float32, device='" + device + "'))\n"
        "opt = torch.optim.SGD([w], lr=0.1)\n"
        "scaler = torch.amp.GradScaler('" + device + "', growth_interval=" + std::to_string(growth_interval) + ")\n"
        "steps = [\n";
  for (const auto& step : script) {
    py += "  [";
    for (const Micro& m : step) {
      py += "([";
      for (float x : m.c) py += hex(x) + ",";
      py += "], " + hex(m.weight) + "),";
    }
    py += "],\n";
  }
  py += "]\n"
        "for micro in steps:\n"
        "    for c, weight in micro:\n"
        "        loss = (w * torch.tensor(c, dtype=torch.float32, device=w.device)).sum() * weight\n"
        "        scaler.scale(loss).backward()\n"
        "    scaler.unscale_(opt)\n"
        "    grad = w.grad.clone()\n"
        "    found = sum(v.item() for v in scaler._found_inf_per_device(opt).values())\n"
        "    scaler.step(opt)\n"
        "    scaler.update()\n"
        "    print(int(found > 0), scaler.get_scale().hex(), int(scaler._growth_tracker),\n"
        "          ' '.join(float(x).hex() for x in grad.tolist()), ' '.join(float(x).hex() for x in w.tolist()))\n"
        "    opt.zero_grad()\n";
  TempDir dir;
  write_file(dir / "scaler.py", py);
  const CommandResult r = run(std::string(LOOM_TEST_PYTHON) + " " + (dir / "scaler.py").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<StepRecord> out;
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    std::vector<std::string> tok;
    std::string t;
    while (in >> t) tok.push_back(t);
    if (tok.size() != 13) continue;  // not a result line (e.g. a warning)
    StepRecord rec;
    rec.skipped = tok[0] == "1";
    rec.scale = std::strtod(tok[1].c_str(), nullptr);
    rec.tracker = std::stoll(tok[2]);
    for (size_t i = 3; i < 8; ++i) rec.grad.push_back(std::strtod(tok[i].c_str(), nullptr));
    for (size_t i = 8; i < 13; ++i) rec.w.push_back(std::strtod(tok[i].c_str(), nullptr));
    out.push_back(rec);
  }
  return out;
}

std::vector<double> values(const at::Tensor& t) {
  const at::Tensor d = t.detach().to(at::kDouble).contiguous();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

std::vector<StepRecord> loom_scaler(Precision& p, const Script& script, c10::Device device = c10::kCPU) {
  at::Tensor w = torch::tensor(kInitialW, at::kFloat).to(device).requires_grad_(true);
  torch::optim::SGD opt({w}, torch::optim::SGDOptions(0.1));
  std::vector<StepRecord> out;
  for (const auto& step : script) {
    for (const Micro& m : step) p.backward((w * torch::tensor(m.c, at::kFloat).to(device)).sum() * m.weight);
    const StepResult r = p.step(opt);
    out.push_back({r.skipped, PrecisionPlugins::scale_of(p), PrecisionPlugins::tracker_of(p), values(w.grad()), values(w)});
    opt.zero_grad();
  }
  return out;
}

void check_against_grad_scaler(const std::shared_ptr<Precision>& p, c10::Device device) {
  const Script script = scaler_script();
  const auto expected = python_grad_scaler(script, 3, device.is_cuda() ? "cuda" : "cpu");
  ASSERT_EQ(expected.size(), script.size());
  ASSERT_TRUE(p);
  EXPECT_EQ(PrecisionPlugins::scale_of(*p), 65536.0);
  const auto actual = loom_scaler(*p, script, device);

  int skipped = 0, grown = 0;
  double previous = 65536.0;
  for (size_t k = 0; k < script.size(); ++k) {
    SCOPED_TRACE("step " + std::to_string(k));
    const StepRecord &e = expected[k], &a = actual[k];
    EXPECT_EQ(a.skipped, e.skipped);
    EXPECT_EQ(a.scale, e.scale);
    EXPECT_EQ(a.tracker, e.tracker);
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_TRUE(same_value(a.grad[i], e.grad[i])) << "grad[" << i << "] " << a.grad[i] << " vs " << e.grad[i];
      EXPECT_EQ(a.w[i], e.w[i]) << "w[" << i << "]";
      EXPECT_TRUE(std::isfinite(a.w[i]));
    }
    skipped += a.skipped;
    grown += a.scale > previous;
    previous = a.scale;
  }
  // The script exercises what it claims to: the five injected steps skip, and the scale grows too.
  EXPECT_EQ(skipped, 5);
  for (size_t k : {3u, 5u, 8u, 12u, 13u}) EXPECT_TRUE(actual[k].skipped) << "step " << k;
  EXPECT_GE(grown, 2);
  // The pinned trajectory (GradScaler's algorithm by hand): 3 clean steps grow ×2, a skip halves and
  // resets the tracker.
  const std::vector<double> pinned = {65536,  65536, 131072, 65536, 65536, 32768, 32768, 32768,
                                      16384, 16384, 16384,  32768, 16384, 8192,  8192,  8192};
  for (size_t k = 0; k < pinned.size(); ++k) EXPECT_EQ(actual[k].scale, pinned[k]) << "step " << k;

  const auto m = p->epoch_metrics();
  EXPECT_EQ(std::get<double>(m.at("loss_scale")), 8192.0);
  EXPECT_EQ(std::get<int64_t>(m.at("skipped_steps")), 5) << "a count, typed as an integer";
  EXPECT_EQ(std::get<int64_t>(p->epoch_metrics().at("skipped_steps")), 0) << "skipped_steps resets at each epoch_metrics()";
}

TEST_F(PrecisionPlugins, Fp16ScalerMatchesPythonGradScalerExactly) {
  check_against_grad_scaler(make("amp-fp16", {{"growth_interval", int64_t{3}}}), c10::kCPU);
}

// Run by scripts/gpu-check-precision.sh on a CUDA machine; skipped elsewhere.
TEST_F(PrecisionPlugins, Fp16ScalerMatchesPythonGradScalerOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  check_against_grad_scaler(make("amp-fp16", {{"growth_interval", int64_t{3}}}), c10::kCUDA);
}

TEST_F(PrecisionPlugins, Fp16StateDictRoundTripRestoresTheScaleExactly) {
  const Script script = scaler_script();
  const Script first(script.begin(), script.begin() + 7), rest(script.begin() + 7, script.end());
  auto a = make("amp-fp16", {{"growth_interval", int64_t{3}}});
  ASSERT_TRUE(a);
  loom_scaler(*a, first);
  const StateDict saved = a->state_dict();
  EXPECT_EQ(saved.at("scale").scalar_type(), at::kFloat);
  EXPECT_EQ(saved.at("growth_tracker").scalar_type(), at::kInt);
  EXPECT_EQ(saved.at("scale").item<double>(), 32768.0);
  EXPECT_EQ(saved.at("growth_tracker").item<int64_t>(), 1);
  EXPECT_EQ(saved.at("epoch_skipped_steps").item<int64_t>(), 2);

  // Through the same serialization the host's checkpoint uses (an archive of named tensors).
  TempDir dir;
  {
    torch::serialize::OutputArchive archive;
    for (const auto& [k, v] : saved) archive.write(k, v);
    archive.save_to((dir / "state.pt").string());
  }
  StateDict loaded;
  {
    torch::serialize::InputArchive archive;
    archive.load_from((dir / "state.pt").string());
    for (const auto& k : archive.keys()) archive.read(k, loaded[k]);
  }
  auto b = make("amp-fp16", {{"growth_interval", int64_t{3}}});
  ASSERT_TRUE(b);
  b->load_state_dict(loaded);
  for (const auto& [k, v] : saved) EXPECT_TRUE(torch::equal(b->state_dict().at(k), v)) << k;

  // The resumed scaler continues exactly as the original does.
  const auto ra = loom_scaler(*a, rest);
  const auto rb = loom_scaler(*b, rest);
  for (size_t k = 0; k < rest.size(); ++k) {
    EXPECT_EQ(ra[k].scale, rb[k].scale) << k;
    EXPECT_EQ(ra[k].tracker, rb[k].tracker) << k;
    EXPECT_EQ(ra[k].skipped, rb[k].skipped) << k;
  }
  EXPECT_EQ(a->epoch_metrics(), b->epoch_metrics());
  EXPECT_THROW(b->load_state_dict({{"growth_tracker", at::zeros({}, at::kInt)}}), std::exception);
}

TEST_F(PrecisionPlugins, Fp16MinScaleIsAFloor) {
  auto p = make("amp-fp16", {{"min_scale", 1024.0}});
  ASSERT_TRUE(p);
  const Script all_inf(10, std::vector<Micro>{{{1.0f, kNaN, 0.0f, 0.0f, 0.0f}, 1.0}});
  const auto r = loom_scaler(*p, all_inf);
  const std::vector<double> expected = {32768, 16384, 8192, 4096, 2048, 1024, 1024, 1024, 1024, 1024};
  for (size_t k = 0; k < r.size(); ++k) {
    EXPECT_TRUE(r[k].skipped);
    EXPECT_EQ(r[k].scale, expected[k]) << "step " << k;
    for (double w : r[k].w) EXPECT_TRUE(std::isfinite(w));
  }
  EXPECT_EQ(r.back().w, std::vector<double>(kInitialW.begin(), kInitialW.end())) << "a skipped step moved the weights";
  EXPECT_TRUE(ctx_.logger_.warnings.empty());
  // Without a floor the same run halves on (as GradScaler does), and a streak that takes the scale below
  // 1 is reported, once.
  auto q = make("amp-fp16");
  ASSERT_TRUE(q);
  const auto s = loom_scaler(*q, Script(16, all_inf[0]));
  EXPECT_EQ(s.back().scale, 1.0);
  EXPECT_TRUE(ctx_.logger_.warnings.empty());
  const auto t = loom_scaler(*q, Script(3, all_inf[0]));
  EXPECT_EQ(t.back().scale, 0.125);
  ASSERT_EQ(ctx_.logger_.warnings.size(), 1u);
  EXPECT_NE(ctx_.logger_.warnings[0].find("17 optimizer steps in a row skipped"), std::string::npos)
      << ctx_.logger_.warnings[0];

  EXPECT_ANY_THROW(make("amp-fp16", {{"min_scale", 1.0e6}}));       // above init_scale
  EXPECT_ANY_THROW(make("amp-fp16", {{"growth_factor", 1.0}}));     // GradScaler: must be > 1
  EXPECT_ANY_THROW(make("amp-fp16", {{"backoff_factor", 1.0}}));    // GradScaler: must be < 1
}

TEST_F(PrecisionPlugins, Fp16ClipsTheUnscaledGradients) {
  auto p = make("amp-fp16", {{"max_grad_norm", 1.0}});
  ASSERT_TRUE(p);
  at::Tensor w = torch::zeros({2}, at::kFloat).requires_grad_(true);
  torch::optim::SGD opt({w}, torch::optim::SGDOptions(1.0));
  p->backward((w * torch::tensor({3.0f, 4.0f})).sum());  // unscaled gradient (3, 4): norm 5
  const StepResult r = p->step(opt);
  EXPECT_FALSE(r.skipped);
  EXPECT_NEAR(r.grad_norm, 5.0, 1e-6) << "the norm of the scaled gradients would be 5 × 65536";
  EXPECT_NEAR(w.grad().norm().item<double>(), 1.0, 1e-6);
  EXPECT_TRUE(torch::allclose(w.detach(), torch::tensor({-0.6f, -0.8f}), 1e-6, 1e-6));
}

TEST_F(PrecisionPlugins, Fp16WithoutLossScalingIsPlainAutocast) {
  auto p = make("amp-fp16", {{"loss_scaling", false}});
  ASSERT_TRUE(p);
  at::Tensor w = torch::zeros({2}, at::kFloat).requires_grad_(true);
  torch::optim::SGD opt({w}, torch::optim::SGDOptions(1.0));
  p->backward((w * torch::tensor({3.0f, 4.0f})).sum());
  EXPECT_TRUE(torch::equal(w.grad(), torch::tensor({3.0f, 4.0f})));
  EXPECT_FALSE(p->step(opt).skipped);
  EXPECT_TRUE(p->state_dict().empty());
  EXPECT_EQ(std::get<double>(p->epoch_metrics().at("loss_scale")), 1.0);
}

// A small MLP whose fp16 backward really overflows: a huge initial scale makes the scaled gradients
// inf in float16. The step is skipped, the weights stay bit-identical and finite, the scale backs off,
// and training goes on once the scale is small enough.
TEST_F(PrecisionPlugins, Fp16OverflowNeverWritesNaNIntoTheWeights) {
  const double init_scale = std::ldexp(1.0, 60);
  auto p = make("amp-fp16", {{"init_scale", init_scale}});
  ASSERT_TRUE(p);
  torch::manual_seed(0);
  torch::nn::Sequential model(torch::nn::Linear(16, 32), torch::nn::ReLU(), torch::nn::Linear(32, 4));
  p->prepare(*model, c10::kCPU);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1));
  const at::Tensor x = torch::randn({8, 16}), y = torch::randint(0, 4, {8});
  auto snapshot = [&] {
    std::vector<at::Tensor> out;
    for (const auto& t : model->parameters()) out.push_back(t.detach().clone());
    return out;
  };
  const auto before = snapshot();
  int skipped = 0;
  double expected_scale = static_cast<float>(init_scale);
  bool stepped = false;
  for (int k = 0; k < 80 && !stepped; ++k) {
    at::Tensor loss;
    {
      auto scope = p->forward_scope(c10::kCPU);
      const at::Tensor logits = model->forward(x);
      EXPECT_EQ(logits.scalar_type(), at::kHalf);
      loss = torch::nn::functional::cross_entropy(logits, y);
    }
    p->backward(loss);
    const StepResult r = p->step(opt);
    if (r.skipped) {
      ++skipped;
      expected_scale *= 0.5;
      EXPECT_EQ(scale_of(*p), expected_scale) << "step " << k;
      const auto now = snapshot();
      for (size_t i = 0; i < now.size(); ++i) EXPECT_TRUE(torch::equal(now[i], before[i])) << "step " << k;
    } else {
      stepped = true;
    }
    opt.zero_grad();
  }
  EXPECT_GE(skipped, 20) << "the initial scale 2^60 should overflow float16 for many halvings";
  EXPECT_TRUE(stepped) << "the scale never came down far enough to take a step";
  for (const auto& t : model->parameters()) EXPECT_TRUE(torch::isfinite(t).all().item<bool>());
  EXPECT_EQ(std::get<int64_t>(p->epoch_metrics().at("skipped_steps")), static_cast<int64_t>(skipped));
}

// End to end: skipped steps do not advance the host's optimizer-step count (so the LR schedule does not
// move), the metrics carry loss_scale and skipped_steps, and the weights stay finite.
TEST(PrecisionEndToEnd, Fp16SkippedStepsDoNotAdvanceTheSchedule) {
  TempDir out;
  const CommandResult r = loom("run " + synthetic_config(out) + " --set run.output_dir=" + out.path().string() +
                               " --set precision.plugin=amp-fp16 --set precision.init_scale=1099511627776.0"
                               " --set precision.growth_interval=10");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path run_dir = only_run_dir(out.path(), "synthetic");
  const auto metrics = read_epoch_records(run_dir / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  // 29 groups per epoch (see kSyntheticToml); each skipped one is missing from optimizer_steps.
  int64_t total_skipped = 0;
  for (size_t e = 0; e < metrics.size(); ++e) {
    ASSERT_TRUE(metrics[e].contains("loss_scale") && metrics[e].contains("skipped_steps")) << metrics[e].dump();
    total_skipped += metrics[e]["skipped_steps"].get<int64_t>();
    EXPECT_EQ(metrics[e]["optimizer_steps"].get<int64_t>(), 29 * static_cast<int64_t>(e + 1) - total_skipped)
        << metrics[e].dump();
  }
  EXPECT_GE(metrics[0]["skipped_steps"].get<int64_t>(), 10) << "2^40 should overflow float16 for several steps";
  EXPECT_LT(metrics[0]["loss_scale"].get<double>(), 1099511627776.0);
  const auto summary = nlohmann::json::parse(read_file(run_dir / "summary.json"));
  EXPECT_GE(summary["test_accuracy"].get<double>(), 0.8) << summary.dump(2);
  EXPECT_TRUE(std::isfinite(summary["test_loss"].get<double>()));
}

// ---------------------------------------------------------------------------------------------------
// Autocast scopes
// ---------------------------------------------------------------------------------------------------

struct AutocastState {
  bool enabled;
  at::ScalarType dtype;
  bool cache;
  bool operator==(const AutocastState&) const = default;
};
AutocastState cpu_autocast() {
  return {at::autocast::is_autocast_enabled(at::kCPU), at::autocast::get_autocast_dtype(at::kCPU),
          at::autocast::is_autocast_cache_enabled()};
}
int nesting_depth() {  // increment_nesting returns the new depth
  const int depth = at::autocast::increment_nesting() - 1;
  at::autocast::decrement_nesting();
  return depth;
}

// Python's autocast, same ops: the dtype each op gives under torch.autocast('cpu', dtype).
std::vector<std::string> python_autocast_dtypes(const std::string& dtype, const std::string& device) {
  TempDir dir;
  write_file(dir / "ac.py",
             "import torch\nimport torch.nn.functional as F\ntorch.manual_seed(0)\n"
             "torch.set_default_device('" + device + "')\n"
             "x = torch.randn(4, 8); w = torch.randn(3, 8); b = torch.randn(3); img = torch.randn(2, 3, 6, 6)\n"
             "k = torch.randn(5, 3, 3, 3); y = torch.tensor([0, 1, 2, 0])\n"
             "with torch.autocast('" + device + "', dtype=torch." + dtype + "):\n"
             "    lin = F.linear(x, w, b)\n"
             "    out = [lin, F.conv2d(img, k), torch.matmul(x, x.t()), torch.mm(x, x.t()), torch.bmm(x[None], x.t()[None]),\n"
             "           torch.addmm(b, x, w.t()), F.softmax(x, 1), F.log_softmax(x, 1), F.softmax(lin, 1),\n"
             "           F.log_softmax(lin, 1), F.cross_entropy(lin, y), F.nll_loss(F.log_softmax(lin.float(), 1), y),\n"
             "           F.mse_loss(lin, torch.zeros(4, 3)), F.relu(lin), F.layer_norm(x, [8]), lin.sum()]\n"
             "print(' '.join(str(t.dtype).replace('torch.', '') for t in out))\n");
  const CommandResult r = run(std::string(LOOM_TEST_PYTHON) + " " + (dir / "ac.py").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> out;
  std::istringstream in(r.output);
  std::string t;
  while (in >> t) out.push_back(t);
  return out;
}

std::vector<std::string> loom_autocast_dtypes(Precision& p, c10::Device device) {
  namespace F = torch::nn::functional;
  torch::manual_seed(0);
  const auto o = at::TensorOptions().device(device);
  const at::Tensor x = torch::randn({4, 8}, o), w = torch::randn({3, 8}, o), b = torch::randn({3}, o),
                   img = torch::randn({2, 3, 6, 6}, o), k = torch::randn({5, 3, 3, 3}, o),
                   y = torch::tensor({0, 1, 2, 0}).to(device);
  std::vector<at::Tensor> out;
  {
    auto scope = p.forward_scope(device);
    const at::Tensor lin = F::linear(x, w, b);
    out = {lin, F::conv2d(img, k), torch::matmul(x, x.t()), torch::mm(x, x.t()),
           torch::bmm(x.unsqueeze(0), x.t().unsqueeze(0)), torch::addmm(b, x, w.t()), torch::softmax(x, 1),
           torch::log_softmax(x, 1), torch::softmax(lin, 1), torch::log_softmax(lin, 1),
           F::cross_entropy(lin, y.to(at::kLong)), F::nll_loss(torch::log_softmax(lin.to(at::kFloat), 1), y.to(at::kLong)),
           F::mse_loss(lin, torch::zeros({4, 3}, o)), torch::relu(lin), F::layer_norm(x, F::LayerNormFuncOptions({8})),
           lin.sum()};
  }
  std::vector<std::string> names;
  for (const auto& t : out) {
    std::string n = c10::toString(t.scalar_type());  // "BFloat16", "Half", "Float"
    names.push_back(n == "BFloat16" ? "bfloat16" : n == "Half" ? "float16" : n == "Float" ? "float32" : n);
  }
  return names;
}

void check_autocast_dtypes(const std::shared_ptr<Precision>& p, const std::string& dtype, c10::Device device) {
  ASSERT_TRUE(p);
  const auto expected = python_autocast_dtypes(dtype, device.is_cuda() ? "cuda" : "cpu");
  const auto actual = loom_autocast_dtypes(*p, device);
  ASSERT_EQ(expected.size(), 16u);
  EXPECT_EQ(actual, expected);
  // The claims spelled out: linear, conv, matmul run low; losses and layer_norm are float32; a float32
  // input's softmax/log_softmax stays float32. (A low-precision input's softmax stays low on the CPU, where
  // autocast passes softmax through, and becomes float32 on CUDA, where it is float32-listed: ops 8, 9
  // are checked against Python only.)
  for (size_t i : {0u, 1u, 2u, 3u, 4u, 5u, 13u}) EXPECT_EQ(actual[i], dtype) << "op " << i;
  for (size_t i : {6u, 7u, 10u, 11u, 12u, 14u}) EXPECT_EQ(actual[i], "float32") << "op " << i;
}

TEST_F(PrecisionPlugins, AutocastGivesPyTorchsDtypes) {
  check_autocast_dtypes(make("amp-bf16"), "bfloat16", c10::kCPU);
  check_autocast_dtypes(make("amp-fp16"), "float16", c10::kCPU);
}

// Run by scripts/gpu-check-precision.sh on a CUDA machine; skipped elsewhere.
TEST_F(PrecisionPlugins, AutocastGivesPyTorchsDtypesOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  check_autocast_dtypes(make("amp-bf16"), "bfloat16", c10::kCUDA);
  check_autocast_dtypes(make("amp-fp16"), "float16", c10::kCUDA);
}

TEST_F(PrecisionPlugins, AutocastScopeRestoresStateAlsoOnExceptionsAndWhenNested) {
  auto bf16 = make("amp-bf16");
  auto fp16 = make("amp-fp16", {{"cache_enabled", false}});
  auto fp32 = make("fp32");
  ASSERT_TRUE(bf16 && fp16 && fp32);
  // A starting state unlike any the scopes set, so a missed restore shows.
  at::autocast::set_autocast_dtype(at::kCPU, at::kHalf);
  at::autocast::set_autocast_cache_enabled(false);
  const AutocastState outside = cpu_autocast();
  ASSERT_EQ(outside, (AutocastState{false, at::kHalf, false}));
  ASSERT_EQ(nesting_depth(), 0);
  {
    auto s = bf16->forward_scope(c10::kCPU);
    EXPECT_EQ(cpu_autocast(), (AutocastState{true, at::kBFloat16, true}));
    EXPECT_EQ(nesting_depth(), 1);
    {
      auto inner = fp16->forward_scope(c10::kCPU);
      EXPECT_EQ(cpu_autocast(), (AutocastState{true, at::kHalf, false}));
      EXPECT_EQ(nesting_depth(), 2);
      {
        auto off = fp32->forward_scope(c10::kCPU);  // fp32 turns autocast off inside
        EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
      }
      EXPECT_EQ(cpu_autocast(), (AutocastState{true, at::kHalf, false}));
    }
    EXPECT_EQ(cpu_autocast(), (AutocastState{true, at::kBFloat16, true}));
    EXPECT_EQ(nesting_depth(), 1);
  }
  EXPECT_EQ(cpu_autocast(), outside);
  EXPECT_EQ(nesting_depth(), 0);

  // An exception leaving nested scopes restores everything.
  try {
    auto s = fp16->forward_scope(c10::kCPU);
    auto inner = bf16->forward_scope(c10::kCPU);
    torch::nn::functional::linear(torch::ones({2, 3}), torch::ones({4, 5}));  // shape mismatch: throws
    ADD_FAILURE() << "expected a throw";
  } catch (const std::exception&) {
  }
  EXPECT_EQ(cpu_autocast(), outside);
  EXPECT_EQ(nesting_depth(), 0);

  // Autocast state is per device type: a CPU scope leaves CUDA's settings alone.
  const bool cuda_enabled = at::autocast::is_autocast_enabled(at::kCUDA);
  const at::ScalarType cuda_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
  {
    auto s = bf16->forward_scope(c10::kCPU);
    EXPECT_EQ(at::autocast::is_autocast_enabled(at::kCUDA), cuda_enabled);
    EXPECT_EQ(at::autocast::get_autocast_dtype(at::kCUDA), cuda_dtype);
  }
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);  // back to LibTorch's defaults
  at::autocast::set_autocast_cache_enabled(true);
}

TEST_F(PrecisionPlugins, MemoryFormatChoosesTheLayoutOfFourDimensionalParameters) {
  auto conv_net = [] {
    return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3)), torch::nn::Flatten(),
                                 torch::nn::Linear(8 * 4 * 4, 2));
  };
  for (const char* name : {"fp32", "amp-bf16", "amp-fp16"}) {
    SCOPED_TRACE(name);
    // auto: channels_last for a convolutional model on the CPU (measured faster with oneDNN)
    // prepare() returns the layout the host must give the model's inputs (SDK 0.6: returned, not inferred)
    auto model = conv_net();
    EXPECT_EQ(make(name, {})->prepare(*model, c10::kCPU).input_memory_format, at::MemoryFormat::ChannelsLast);
    EXPECT_TRUE(model->parameters()[0].is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_FALSE(model->parameters()[0].is_contiguous());
    // contiguous opts out
    model = conv_net();
    EXPECT_EQ(make(name, {{"memory_format", std::string("contiguous")}})->prepare(*model, c10::kCPU).input_memory_format,
              at::MemoryFormat::Contiguous);
    EXPECT_TRUE(model->parameters()[0].is_contiguous());
    // a model without 4-D parameters is left alone whatever the choice
    torch::nn::Linear linear(4, 2);
    const at::Tensor w = linear->weight;
    EXPECT_EQ(make(name, {{"memory_format", std::string("channels_last")}})->prepare(*linear, c10::kCPU).input_memory_format,
              at::MemoryFormat::Contiguous);
    EXPECT_TRUE(linear->weight.is_same(w));
    EXPECT_TRUE(linear->weight.is_contiguous());
  }
}

TEST_F(PrecisionPlugins, ChannelsLastConvertsFourDimensionalParameters) {
  // Seeded: with unlucky random weights amp-fp16's first step (scale 65536) overflows and is skipped.
  torch::manual_seed(0);
  for (const char* name : {"fp32", "amp-bf16", "amp-fp16"}) {
    SCOPED_TRACE(name);
    auto p = make(name, {{"memory_format", std::string("channels_last")}});
    ASSERT_TRUE(p);
    torch::nn::Sequential model(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3)), torch::nn::Flatten(),
                                torch::nn::Linear(8 * 4 * 4, 2));
    const at::Tensor conv_weight = model->parameters()[0];
    p->prepare(*model, c10::kCPU);
    EXPECT_TRUE(model->parameters()[0].is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(conv_weight.is_same(model->parameters()[0])) << "the parameter must keep its identity";
    torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1));
    at::Tensor logits;
    {
      auto scope = p->forward_scope(c10::kCPU);
      logits = model->forward(torch::randn({2, 3, 6, 6}));
    }
    p->backward(torch::nn::functional::cross_entropy(logits.to(at::kFloat), torch::tensor({0, 1}).to(at::kLong)));
    EXPECT_FALSE(p->step(opt).skipped);
  }
}

// ---------------------------------------------------------------------------------------------------
// End to end: resume with amp-fp16; amp-bf16 accuracy against fp32
// ---------------------------------------------------------------------------------------------------

// The scale, growth tracker and per-epoch skip count come back from the checkpoint: an interrupted and
// resumed amp-fp16 run ends with the weights and the per-epoch loss_scale/skipped_steps of an
// uninterrupted one. The initial scale overflows for the first steps and growth_interval is short, so
// the scale changes during the run.
TEST(PrecisionEndToEnd, Fp16ResumeRestoresTheScaleExactly) {
  TempDir config_dir;
  const std::string config = synthetic_config(config_dir);
  auto args = [&config](const fs::path& out) {
    return std::vector<std::string>{LOOM_TEST_BIN, "run", config, "--set", "run.output_dir=" + out.string(),
                                    "--set", "run.epochs=3", "--set", "dataset.samples=8192", "--set",
                                    "loader.batch_size=16", "--set", "precision.plugin=amp-fp16", "--set",
                                    "precision.init_scale=1099511627776.0", "--set", "precision.growth_interval=20"};
  };
  TempDir a, b;
  {
    const CommandResult r = run(command_line(args(a.path())));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  bool stopped = false;
  const int code = run_and_stop_after_first_checkpoint(args(b.path()), b.path() / "synthetic",
                                                       std::chrono::milliseconds(50), &stopped);
  ASSERT_TRUE(stopped) << "the run never wrote its first checkpoint";
  ASSERT_EQ(code, 143) << "expected the SIGTERM-stopped run to exit 143 (it may have finished before the signal)";
  const fs::path interrupted = only_run_dir(b.path(), "synthetic");
  const CommandResult resumed = loom("run --resume " + interrupted.string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;

  expect_same_weights(only_run_dir(a.path(), "synthetic") / "model.pt", interrupted / "model.pt");
  const auto ma = read_epoch_records(only_run_dir(a.path(), "synthetic") / "metrics.jsonl");
  const auto mb = read_epoch_records(interrupted / "metrics.jsonl");
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    EXPECT_EQ(ma[i]["loss_scale"].get<double>(), mb[i]["loss_scale"].get<double>()) << "epoch " << i + 1;
    EXPECT_EQ(ma[i]["skipped_steps"], mb[i]["skipped_steps"]) << "epoch " << i + 1;
    EXPECT_EQ(ma[i]["optimizer_steps"], mb[i]["optimizer_steps"]) << "epoch " << i + 1;
    EXPECT_DOUBLE_EQ(ma[i]["train_loss"].get<double>(), mb[i]["train_loss"].get<double>()) << "epoch " << i + 1;
  }
  EXPECT_GT(ma[0]["skipped_steps"].get<int64_t>(), 0);
  // Had the scale restarted at 2^40 on resume, the resumed epoch would skip steps the original did not
  // and the weights above would differ.
  EXPECT_NE(resumed.output.find("resuming stage 'supervised'"), std::string::npos) << resumed.output;
}

// Reduced quickstart: the quickstart model and optimizer on 500 labeled images per class (5,000), one
// epoch, no validation split, same seed; fp32 and amp-bf16 must land within one point of test accuracy
// on the full 10,000-image test set. (CPU bf16 without AVX512-BF16 is several times slower than fp32,
// hence the reduced setting.)
TEST(PrecisionEndToEnd, QuickstartBf16WithinOnePointOfFp32) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed";
  TempDir out;
  std::map<std::string, double> accuracy;
  for (const std::string plugin : {"fp32", "amp-bf16"}) {
    const CommandResult r =
        loom("run " + kQuickstart + " --set run.output_dir=" + (out.path() / plugin).string() +
             " --set precision.plugin=" + plugin +
             " --set run.epochs=1 --set dataset.labeled_per_class=500 --set dataset.val_size=0");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto summary =
        nlohmann::json::parse(read_file(only_run_dir(out.path() / plugin, "quickstart") / "summary.json"));
    accuracy[plugin] = summary["test_accuracy"].get<double>();
  }
  std::printf("[   INFO   ] test accuracy: fp32 %.4f, amp-bf16 %.4f\n", accuracy["fp32"], accuracy["amp-bf16"]);
  EXPECT_GT(accuracy["fp32"], 0.7) << "the reduced fp32 baseline did not train";
  EXPECT_NEAR(accuracy["amp-bf16"], accuracy["fp32"], 0.01)
      << "fp32 " << accuracy["fp32"] << ", amp-bf16 " << accuracy["amp-bf16"];
}

}  // namespace
}  // namespace loom::test
