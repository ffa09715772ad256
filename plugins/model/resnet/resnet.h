// torchvision's ResNet (torchvision.models.resnet): ResNet-18/34 with BasicBlocks, ResNet-50/101/152 with
// Bottlenecks (stride on the 3x3, "v1.5"), an ImageNet or a CIFAR stem, and a width multiplier. Parameter
// and buffer names equal torchvision's state_dict keys, so torchvision weights load by name.
#pragma once

#include <loom/plugin.h>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <array>
#include <cstdint>

namespace loom::builtin {

/// The architecture a ResNet is built from; the plugin reads it from its parameters.
struct ResNetOptions {
  int64_t depth = 18;                 ///< 18, 34, 50, 101 or 152
  bool cifar_stem = false;            ///< 3x3 stride-1 conv and no max-pool instead of 7x7/2 + max-pool/2
  double width = 1.0;                 ///< multiplier on 64/128/256/512 channels; 1 = torchvision
  bool zero_init_residual = false;    ///< zero the last BatchNorm weight of every block (torchvision's flag)
  double dropout = 0.0;               ///< dropout probability before fc
  int64_t in_channels = 3;
  int64_t num_classes = 1000;
};

class ResNet final : public Model {
 public:
  static FeatureInfo info();
  explicit ResNet(const CreateContext& ctx);
  explicit ResNet(const ResNetOptions& options);

  at::Tensor forward(const at::Tensor& input) override;

 private:
  torch::nn::Sequential make_layer(int64_t& in, int64_t planes, int64_t blocks, int64_t stride, bool bottleneck);

  ResNetOptions options_;
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::array<torch::nn::Sequential, 4> layers_{nullptr, nullptr, nullptr, nullptr};
  torch::nn::Linear fc_{nullptr};
};

}  // namespace loom::builtin
