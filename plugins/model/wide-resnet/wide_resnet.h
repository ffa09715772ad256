// Wide residual network WRN-depth-widen (Zagoruyko & Komodakis, 2016), as the authors' PyTorch port
// (xternalz/WideResNet-pytorch, the model FixMatch-style SSL papers report on CIFAR): a 3x3 16-channel conv,
// three groups of pre-activation blocks (BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3) with strides 1, 2, 2 and
// widths 16k, 32k, 64k, then BN-ReLU, global average pooling and a Linear classifier. Parameter names equal
// that port's state_dict keys (conv1, block1.layer.0.bn1, block1.layer.0.convShortcut, …, bn1, fc).
#pragma once

#include <loom/plugin.h>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <array>
#include <cstdint>

namespace loom::builtin {

/// One pre-activation block. Like the reference, when the width changes the shortcut (a 1x1 conv,
/// `convShortcut`) takes the *pre-activated* input, and otherwise the raw input.
class WideBlockImpl : public torch::nn::Module {
 public:
  WideBlockImpl(int64_t in, int64_t out, int64_t stride, double dropout);
  at::Tensor forward(const at::Tensor& x);

 private:
  double dropout_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Conv2d conv2_;
  torch::nn::Conv2d shortcut_{nullptr};   // registered as convShortcut when in != out
};

/// The reference's NetworkBlock: a Sequential of blocks registered as `layer`, hence block1.layer.0.*.
class WideGroupImpl : public torch::nn::Module {
 public:
  WideGroupImpl(int64_t blocks, int64_t in, int64_t out, int64_t stride, double dropout);
  at::Tensor forward(const at::Tensor& x) { return layer_->forward(x); }

 private:
  torch::nn::Sequential layer_;
};

/// The architecture a WRN is built from; the plugin reads it from its parameters.
struct WideResNetOptions {
  int64_t depth = 28;      ///< 6n + 4: n blocks per group
  int64_t widen = 2;       ///< k: groups of 16k, 32k, 64k channels
  double dropout = 0.0;    ///< between the two convs of each block
  int64_t in_channels = 3;
  int64_t num_classes = 10;
};

class WideResNet final : public Model {
 public:
  static FeatureInfo info();
  explicit WideResNet(const CreateContext& ctx);
  explicit WideResNet(const WideResNetOptions& options);

  at::Tensor forward(const at::Tensor& input) override;

 private:
  torch::nn::Conv2d conv1_{nullptr};
  std::array<std::shared_ptr<WideGroupImpl>, 3> groups_;
  torch::nn::BatchNorm2d bn1_{nullptr};
  torch::nn::Linear fc_{nullptr};
};

}  // namespace loom::builtin
