// The smallest model plugin: flatten, one Linear layer (torch::nn: the cost a model cannot avoid).
#include <loom/dataset.h>  // CreateContext::dataset->spec()
#include <loom/library.h>
#include <loom/model.h>

#include <torch/nn/modules/linear.h>

namespace {

class Linear final : public loom::Model {
 public:
  explicit Linear(const loom::CreateContext& ctx) {
    const auto spec = ctx.dataset->spec();
    int64_t in = 1;
    for (int64_t d : spec.shape) in *= d;
    linear_ = register_module("linear", torch::nn::Linear(in, spec.num_classes));
  }
  at::Tensor forward(const at::Tensor& input) override { return linear_(input.flatten(1)); }

 private:
  torch::nn::Linear linear_{nullptr};
};

void register_features(loom::Registrar& r) {
  r.add<loom::Model>({.name = "linear-min", .version = "1.0.0", .summary = "one Linear layer"},
                     [](const loom::CreateContext& ctx) { return std::make_shared<Linear>(ctx); });
}

}  // namespace

LOOM_PLUGIN_LIBRARY("bench_model", "1.0.0", register_features)
