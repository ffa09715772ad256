// The smallest precision plugin: float32, no scaling (the optimizer's step is its only torch::optim use).
#include <loom/library.h>
#include <loom/precision.h>

#include <torch/optim/optimizer.h>

namespace {

class Fp32 final : public loom::Precision {
 public:
  std::unique_ptr<loom::ForwardScope> forward_scope(c10::Device) override { return std::make_unique<loom::ForwardScope>(); }
  void backward(const at::Tensor& loss) override { loss.backward(); }
  loom::StepResult step(torch::optim::Optimizer& optimizer) override {
    optimizer.step();
    return {};
  }
};

void register_features(loom::Registrar& r) {
  r.add<loom::Precision>({.name = "fp32-min", .version = "1.0.0", .summary = "float32"},
                         [](const loom::CreateContext&) { return std::make_shared<Fp32>(); });
}

}  // namespace

LOOM_PLUGIN_LIBRARY("bench_precision", "1.0.0", register_features)
