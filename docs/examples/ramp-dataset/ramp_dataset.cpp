// A dataset plugin in one file: `samples` deterministic vectors of 8 features and two classes. It includes
// <loom/dataset.h> and the per-operator ATen headers it calls (at::empty, at::arange) — not <torch/torch.h>,
// so it compiles in seconds.
//
//   [dataset]
//   plugin = "ramp"
//   samples = 2048
#include <loom/dataset.h>
#include <loom/library.h>

#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>

#include <cmath>
#include <string>

namespace example {

class RampDataset final : public loom::Dataset {
 public:
  explicit RampDataset(int64_t samples) : samples_(samples) {
    // Splits: 80 % labeled, 10 % validation, 10 % test (sorted, disjoint, int64).
    const int64_t val = samples / 10, test = samples / 10, labeled = samples - val - test;
    splits_.labeled = at::arange(0, labeled, at::kLong);
    splits_.unlabeled = at::arange(0, 0, at::kLong);
    splits_.val = at::arange(labeled, labeled + val, at::kLong);
    splits_.test = at::arange(labeled + val, samples, at::kLong);
    labels_ = at::empty({samples}, at::kLong);
    auto* y = labels_.data_ptr<int64_t>();
    for (int64_t i = 0; i < samples; ++i) y[i] = feature(i, 0) + feature(i, 1) > 0.0 ? 1 : 0;
  }

  loom::SampleSpec spec() const override {
    loom::SampleSpec s;
    s.shape = {kFeatures};
    s.dtype = at::kFloat;
    s.num_classes = 2;
    return s;
  }
  int64_t size() const override { return samples_; }
  at::Tensor indices(loom::Split split) const override { return splits_[split]; }
  at::Tensor labels() const override { return labels_; }

  // Same bytes for the same index every time (a cache may keep them); thread-safe (it only reads).
  at::Tensor load(const at::Tensor& indices) const override {
    const at::Tensor idx = indices.contiguous();
    at::Tensor out = at::empty({idx.size(0), kFeatures}, at::kFloat);
    const auto* ids = idx.data_ptr<int64_t>();
    auto* x = out.data_ptr<float>();
    for (int64_t b = 0; b < idx.size(0); ++b)
      for (int64_t j = 0; j < kFeatures; ++j) x[b * kFeatures + j] = static_cast<float>(feature(ids[b], j));
    return out;
  }

  // Everything that decides load()'s bytes: a cache keys on it.
  std::string fingerprint() const override { return "ramp/1.0.0;samples=" + std::to_string(samples_); }

  static loom::FeatureInfo info() {
    return {.name = "ramp",
            .version = "1.0.0",
            .summary = "deterministic 8-feature vectors, two classes (an example dataset plugin)",
            .params = {loom::ParamSpec::integer("samples", 1024).at_least(20).doc("number of samples in all splits")}};
  }

 private:
  static constexpr int64_t kFeatures = 8;
  static double feature(int64_t i, int64_t j) { return std::sin(0.37 * static_cast<double>((i + 1) * (j + 1))); }

  int64_t samples_;
  loom::SplitIndices splits_;
  at::Tensor labels_;
};

}  // namespace example

static void register_features(loom::Registrar& registrar) {
  // The params arrive validated and defaulted: samples is an integer >= 20 here.
  registrar.add<loom::Dataset>(example::RampDataset::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<example::RampDataset>(ctx.params.integer("samples"));
  });
}

LOOM_PLUGIN_LIBRARY("loom_dataset_ramp", "1.0.0", register_features)
