// torchvision's residual blocks (torchvision/models/resnet.py), with the same submodule names so that a
// torchvision state_dict loads by name: conv1, bn1, conv2, bn2[, conv3, bn3][, downsample.0, downsample.1].
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>

namespace loom::builtin::resnet {

/// conv1x1 + BatchNorm projecting the identity when a block changes the width or the resolution; an
/// empty Sequential (is_empty()) when the identity fits.
torch::nn::Sequential make_downsample(int64_t in, int64_t out, int64_t stride);

/// Two 3x3 convolutions (ResNet-18/34). expansion = 1.
class BasicBlockImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride);
  at::Tensor forward(const at::Tensor& x);
  /// The BatchNorm whose weight zero_init_residual zeroes, so that the block starts as the identity.
  torch::nn::BatchNorm2d& last_bn() { return bn2_; }

 private:
  // Declared (so registered) in torchvision's order: parameters() lists them as state_dict() does.
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Sequential downsample_;
};

/// 1x1 → 3x3 → 1x1 (ResNet-50/101/152), the stride on the 3x3 ("ResNet v1.5", as torchvision).
/// expansion = 4.
class BottleneckImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::BatchNorm2d& last_bn() { return bn3_; }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Conv2d conv3_;
  torch::nn::BatchNorm2d bn3_;
  torch::nn::Sequential downsample_;
};

}  // namespace loom::builtin::resnet
