// random-erasing, mixup and cutmix against torchvision.transforms.v2 (tests/python/augment_mixing_reference.py
// replays each op's documented generator draws and applies torchvision with the parameters they give);
// soft targets; the soft-target loss against PyTorch's cross_entropy; a short `loom run` with mixup.
#include "augment_ops.h"

#include "common/npy/npy_tensor.h"
#include "loop/loss.h"

#include <sstream>

namespace loom::test {
namespace {

// "c<case>_b<batch>": the files of one batch (a stream, not string concatenation: GCC 12 warns
// falsely, -Wstringop-overflow, on "c" + std::to_string(k) + ...).
std::string batch_name(size_t k, size_t b) {
  std::ostringstream s;
  s << 'c' << k << "_b" << b;
  return s.str();
}

struct RefCase {
  std::string op;
  uint64_t seed;
  std::map<std::string, Value> params;
  std::vector<AugmentBatch> batches;  // applied one after the other with one generator
};

// Every case through Loom's op and through torchvision; inputs and targets must be equal bit for bit.
// Returns the script's report ({batch: {"mixed", "lam", ...}}) and Loom's outputs by batch name.
class TorchvisionReference : public AugmentOps {
 protected:
  nlohmann::json expect_matches_torchvision(const std::vector<RefCase>& cases) {
    nlohmann::json manifest = nlohmann::json::array();
    std::map<std::string, AugmentBatch> ours;
    for (size_t k = 0; k < cases.size(); ++k) {
      const RefCase& c = cases[k];
      nlohmann::json params = nlohmann::json::object(), names = nlohmann::json::array();
      for (const auto& [key, value] : c.params) params[key] = to_json(value);
      const auto a = op(c.op, c.params);
      at::Generator g = seeded(c.seed);
      for (size_t b = 0; b < c.batches.size(); ++b) {
        const std::string name = batch_name(k, b);
        npy::save_tensor(dir / (name + "_x.npy"), c.batches[b].x);
        npy::save_tensor(dir / (name + "_y.npy"), c.batches[b].y);
        AugmentBatch out = c.batches[b];
        a->apply(out, g);
        ours[name] = out;
        names.push_back(name);
      }
      manifest.push_back({{"name", batch_name(k, 0)}, {"op", c.op}, {"seed", c.seed}, {"params", params},
                          {"batches", names}, {"classes", kClasses}});
    }
    write_file(dir / "cases.json", manifest.dump());
    const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR
                                 "/tests/python/augment_mixing_reference.py " + dir.path().string());
    EXPECT_EQ(py.exit_code, 0) << py.output;
    if (py.exit_code != 0) return {};
    const nlohmann::json report = nlohmann::json::parse(py.output);
    for (const auto& [name, out] : ours) {
      SCOPED_TRACE(name + ": " + report.at(name).dump());
      const at::Tensor rx = npy::load_tensor(dir / (name + "_ref_x.npy"));
      const at::Tensor ry = npy::load_tensor(dir / (name + "_ref_y.npy"));
      EXPECT_TRUE(torch::equal(out.x, rx)) << "max |Δx| " << (out.x - rx).abs().max().item<double>();
      EXPECT_EQ(out.y.sizes(), ry.sizes());
      if (out.y.sizes() == ry.sizes())
        EXPECT_TRUE(torch::equal(out.y, ry)) << "max |Δy| " << (out.y.to(at::kDouble) - ry).abs().max().item<double>();
      results[name] = out;
    }
    return report;
  }

  TempDir dir;
  std::map<std::string, AugmentBatch> results;
};

class RandomErasing : public TorchvisionReference {};
class MixUp : public TorchvisionReference {};
class CutMix : public TorchvisionReference {};
class Mixing : public AugmentOps {};

TEST_F(RandomErasing, MatchesTorchvisionErase) {
  std::vector<RefCase> cases;
  for (const char* value : {"zero", "random"}) {
    cases.push_back({"random-erasing", 11, {{"value", std::string(value)}}, {random_batch(16, 1), random_batch(16, 2)}});
    cases.push_back({"random-erasing", 12, {{"value", std::string(value)}, {"p", 1.0},
                                            {"scale", std::vector<double>{0.2, 0.6}}, {"ratio", std::vector<double>{0.5, 2.0}}},
                     {random_batch(24, 3)}});
  }
  const nlohmann::json report = expect_matches_torchvision(cases);
  int erased = 0;
  for (const auto& [name, info] : report.items())
    for (const auto& r : info["erased"]) erased += r.is_null() ? 0 : 1;
  EXPECT_GT(erased, 40) << "too few samples erased to compare anything";
  for (const auto& [name, out] : results) EXPECT_TRUE(out.w.defined() && out.y.dim() == 1) << "targets and weights untouched";
}

// y ← λ·y + (1-λ)·y.roll(1) and w likewise, with the report's λ (torchvision computes y; w is Loom's).
void expect_weights_mixed(const std::map<std::string, AugmentBatch>& results, const nlohmann::json& report,
                          const std::map<std::string, at::Tensor>& weights_in) {
  for (const auto& [name, out] : results) {
    const double lam = report.at(name).at("lam").get<double>();
    const bool mixed = report.at(name).at("mixed").get<bool>();
    const at::Tensor& w = weights_in.at(name);
    EXPECT_TRUE(torch::equal(out.w, mixed ? w.roll(1, 0).mul(1.0 - lam).add(w.mul(lam)) : w)) << name;
    EXPECT_TRUE(torch::allclose(out.y.sum(1), torch::ones({out.y.size(0)}))) << name << ": targets sum to 1";
  }
}

std::vector<RefCase> mixing_cases(const std::string& name, std::map<std::string, at::Tensor>& weights) {
  AugmentBatch soft = AugmentOps::random_batch(12, 9);
  soft.y = at::softmax(at::randn({12, AugmentOps::kClasses}, seeded(10)), 1);  // already soft (say, a mixed batch)
  std::vector<RefCase> cases = {
      {name, 21, {}, {AugmentOps::random_batch(16, 4)}},
      {name, 22, {{"p", 0.5}, {"alpha", 0.7}}, {}},
      {name, 23, {}, {soft}},
  };
  for (uint64_t s = 0; s < 6; ++s) cases[1].batches.push_back(AugmentOps::random_batch(8, 30 + s));
  for (size_t k = 0; k < cases.size(); ++k)
    for (size_t b = 0; b < cases[k].batches.size(); ++b)
      weights[batch_name(k, b)] = cases[k].batches[b].w;
  return cases;
}

TEST_F(MixUp, MatchesTorchvision) {
  std::map<std::string, at::Tensor> weights;
  const nlohmann::json report = expect_matches_torchvision(mixing_cases("mixup", weights));
  int mixed = 0;
  for (const auto& [name, info] : report.items()) mixed += info["mixed"].get<bool>() ? 1 : 0;
  EXPECT_GT(mixed, 2);
  EXPECT_LT(mixed, static_cast<int>(report.size())) << "p = 0.5 mixed every batch of the second case";
  expect_weights_mixed(results, report, weights);
}

TEST_F(CutMix, MatchesTorchvision) {
  std::map<std::string, at::Tensor> weights;
  const nlohmann::json report = expect_matches_torchvision(mixing_cases("cutmix", weights));
  for (const auto& [name, info] : report.items()) {
    const auto box = info["box"].get<std::vector<int64_t>>();  // x1, y1, x2, y2
    EXPECT_NEAR(info["lam"].get<double>(), 1.0 - static_cast<double>((box[2] - box[0]) * (box[3] - box[1])) / (16 * 20), 1e-12);
  }
  expect_weights_mixed(results, report, weights);
}

TEST_F(Mixing, TargetsAreProbabilities) {
  for (const char* name : {"mixup", "cutmix"}) {
    const auto a = op(name);
    for (uint64_t seed = 0; seed < 20; ++seed) {
      SCOPED_TRACE(std::string(name) + " seed " + std::to_string(seed));
      AugmentBatch b = applied(*a, random_batch(8, seed), seed);
      ASSERT_EQ(b.y.sizes(), (std::vector<int64_t>{8, kClasses}));
      EXPECT_EQ(b.y.scalar_type(), at::kFloat);
      EXPECT_TRUE(torch::allclose(b.y.sum(1), torch::ones({8})));
      EXPECT_GE(b.y.min().item<float>(), 0.0f);
      b = applied(*a, b, seed + 100);  // soft targets in, mixed again
      EXPECT_TRUE(torch::allclose(b.y.sum(1), torch::ones({8})));
    }
  }
}

TEST_F(Mixing, SoftTargetLossMatchesPyTorchCrossEntropy) {
  TempDir d;
  at::Generator g = seeded(5);
  const at::Tensor logits = at::randn({12, kClasses}, g) * 3;
  // Targets as mixup gives them: two one-hot rows mixed.
  const auto mix = op("mixup", {{"alpha", 1.0}});
  const AugmentBatch mixed = applied(*mix, random_batch(12, 6), 6);
  const at::Tensor hard = at::randint(0, kClasses, {12}, g, at::kLong);
  npy::save_tensor(d / "logits.npy", logits);
  npy::save_tensor(d / "soft.npy", mixed.y);
  npy::save_tensor(d / "hard.npy", hard);
  const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR
                               "/tests/python/augment_mixing_reference.py loss " + d.path().string());
  ASSERT_EQ(py.exit_code, 0) << py.output;
  for (const char* s : {"0.0", "0.1", "0.3"}) {
    const double smoothing = std::stod(s);
    EXPECT_TRUE(torch::allclose(host::per_sample_loss(logits, mixed.y, smoothing),
                                npy::load_tensor(d / (std::string("loss_soft_") + s + ".npy")), 1e-5, 1e-6)) << s;
    EXPECT_TRUE(torch::allclose(host::per_sample_loss(logits, hard, smoothing),
                                npy::load_tensor(d / (std::string("loss_hard_") + s + ".npy")), 1e-5, 1e-6)) << s;
  }
}

TEST_F(Mixing, BadTargetsAreRefusedWithoutBacktrace) {
  AugmentBatch b = random_batch(4, 1);
  b.y = at::full({4, 3}, 1.0 / 3);  // 3 classes, the dataset has 5
  for (const char* name : {"mixup", "cutmix"}) {
    at::Generator g = seeded(1);
    try {
      AugmentBatch copy = b;
      op(name)->apply(copy, g);
      ADD_FAILURE() << name << " accepted soft targets of the wrong width";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(name) + ": soft targets have 3 classes, the dataset declares 5"),
                std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("Exception raised from"), std::string::npos) << e.what();
    }
  }
  const std::string bad_scale = refusal("random-erasing", {{"scale", std::vector<double>{0.5, 0.1}}});
  EXPECT_NE(bad_scale.find("random-erasing: scale must be [min, max] with min <= max"), std::string::npos) << bad_scale;
}

TEST_F(Mixing, EndToEndRunWithMixupAndLabelSmoothing) {
  TempDir d;
  write_file(d / "mix.toml", R"([run]
name = "mix"
seed = 3
epochs = 2
threads = 1
device = "cpu"
output_dir = ")" + (d / "out").string() + R"("

[loader]
batch_size = 32

[dataset]
plugin = "synthetic"
samples = 512
test_samples = 128
classes = 4

[model]
plugin = "mlp"
hidden = [32]

[optimizer]
name = "sgd"
lr = 0.05

[loss]
label_smoothing = 0.1

[[augmentation]]
plugin = "mixup"

[[augmentation]]
plugin = "cutmix"
p = 0.5

[[augmentation]]
plugin = "random-erasing"
)");
  const CommandResult r = loom("run " + (d / "mix.toml").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mixup → cutmix → random-erasing"), std::string::npos) << r.output;
  const auto epochs = read_epoch_records(only_run_dir(d / "out", "mix") / "metrics.jsonl");
  ASSERT_EQ(epochs.size(), 2u);
  for (const auto& e : epochs) {
    ASSERT_TRUE(e.contains("train_loss")) << e.dump();
    const double loss = e["train_loss"].get<double>();
    EXPECT_TRUE(std::isfinite(loss) && loss > 0.0) << e.dump();
  }
}

}  // namespace
}  // namespace loom::test
