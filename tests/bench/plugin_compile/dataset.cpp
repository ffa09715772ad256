// The smallest dataset plugin: 64 random-free samples of shape [4], two classes (tests/bench/bench_plugin_compile.sh).
#include <loom/dataset.h>
#include <loom/library.h>

#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>

namespace {

class Tiny final : public loom::Dataset {
 public:
  loom::SampleSpec spec() const override { return {.shape = {4}, .dtype = c10::kFloat, .num_classes = 2}; }
  int64_t size() const override { return 64; }
  at::Tensor indices(loom::Split split) const override {
    return split == loom::Split::Labeled ? at::arange(64, at::kLong) : at::zeros({0}, at::kLong);
  }
  at::Tensor labels() const override { return at::arange(64, at::kLong).remainder(2); }
  at::Tensor load(const at::Tensor& indices) const override {
    return indices.to(at::kFloat).unsqueeze(1).expand({indices.size(0), 4}).contiguous();
  }
  std::string fingerprint() const override { return "tiny/1"; }
};

void register_features(loom::Registrar& r) {
  r.add<loom::Dataset>({.name = "tiny", .version = "1.0.0", .summary = "64 samples"},
                       [](const loom::CreateContext&) { return std::make_shared<Tiny>(); });
}

}  // namespace

LOOM_PLUGIN_LIBRARY("bench_dataset", "1.0.0", register_features)
