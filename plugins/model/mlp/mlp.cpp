#include "mlp.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include <functional>
#include <numeric>
#include <stdexcept>

namespace loom::builtin {

FeatureInfo Mlp::info() {
  return {
      .name = "mlp",
      .version = "1.0.0",
      .summary = "multi-layer perceptron: flatten, hidden Linear+ReLU layers, Linear to the classes",
      .params = {
          ParamSpec::int_list("hidden", {256, 128}).at_least(1).doc("width of each hidden layer ([] = linear model)"),
          ParamSpec::real("dropout", 0.0).range(0.0, 0.9).doc("dropout probability after each hidden layer"),
          ParamSpec::boolean("batchnorm", false).doc("BatchNorm1d after each hidden Linear"),
      },
  };
}

Mlp::Mlp(const CreateContext& ctx) {
  if (!ctx.dataset) throw std::logic_error("mlp: created without a dataset");
  const SampleSpec spec = ctx.dataset->spec();
  const double dropout = ctx.params.real("dropout");
  const bool batchnorm = ctx.params.boolean("batchnorm");

  int64_t width = std::accumulate(spec.shape.begin(), spec.shape.end(), int64_t{1}, std::multiplies<>());
  for (int64_t hidden : ctx.params.get<std::vector<int64_t>>("hidden")) {
    layers_->push_back(torch::nn::Linear(width, hidden));
    if (batchnorm) layers_->push_back(torch::nn::BatchNorm1d(hidden));
    layers_->push_back(torch::nn::ReLU());
    if (dropout > 0.0) layers_->push_back(torch::nn::Dropout(dropout));
    width = hidden;
  }
  layers_->push_back(torch::nn::Linear(width, spec.num_classes));
  register_module("layers", layers_);
}

at::Tensor Mlp::forward(const at::Tensor& input) { return layers_->forward(input.flatten(1)); }

}  // namespace loom::builtin
