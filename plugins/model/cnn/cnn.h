// Small convolutional network: conv blocks (Conv3x3 [+BN] + ReLU + MaxPool2), then a two-layer head.
#pragma once

#include <loom/plugin.h>

#include <torch/nn/modules/container/sequential.h>

namespace loom::builtin {

class Cnn final : public Model {
 public:
  static FeatureInfo info();
  explicit Cnn(const CreateContext& ctx);

  at::Tensor forward(const at::Tensor& input) override;

 private:
  torch::nn::Sequential features_;
  torch::nn::Sequential head_;
};

}  // namespace loom::builtin
