// Multi-layer perceptron over the flattened sample.
#pragma once

#include <loom/plugin.h>

#include <torch/nn/modules/container/sequential.h>

namespace loom::builtin {

class Mlp final : public Model {
 public:
  static FeatureInfo info();
  explicit Mlp(const CreateContext& ctx);

  at::Tensor forward(const at::Tensor& input) override;

 private:
  torch::nn::Sequential layers_;
};

}  // namespace loom::builtin
