#include "blocks.h"

#include <ATen/ops/relu.h>

namespace loom::builtin::resnet {
namespace {

// Every convolution of a ResNet is followed by a BatchNorm, whose shift makes a conv bias redundant.
torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

at::Tensor shortcut(torch::nn::Sequential& downsample, const at::Tensor& x) {
  return downsample->is_empty() ? x : downsample->forward(x);
}

}  // namespace

torch::nn::Sequential make_downsample(int64_t in, int64_t out, int64_t stride) {
  torch::nn::Sequential seq;
  if (stride != 1 || in != out) {
    seq->push_back(conv(in, out, 1, stride));
    seq->push_back(torch::nn::BatchNorm2d(out));
  }
  return seq;
}

BasicBlockImpl::BasicBlockImpl(int64_t in, int64_t planes, int64_t stride)
    : conv1_(register_module("conv1", conv(in, planes, 3, stride))),
      bn1_(register_module("bn1", torch::nn::BatchNorm2d(planes))),
      conv2_(register_module("conv2", conv(planes, planes, 3, 1))),
      bn2_(register_module("bn2", torch::nn::BatchNorm2d(planes))),
      downsample_(make_downsample(in, planes * kExpansion, stride)) {
  // Registered only when it has parameters: torchvision's state_dict has downsample.* keys only then.
  if (!downsample_->is_empty()) register_module("downsample", downsample_);
}

at::Tensor BasicBlockImpl::forward(const at::Tensor& x) {
  at::Tensor out = at::relu(bn1_->forward(conv1_->forward(x)));
  out = bn2_->forward(conv2_->forward(out));
  return at::relu(out + shortcut(downsample_, x));
}

BottleneckImpl::BottleneckImpl(int64_t in, int64_t planes, int64_t stride)
    : conv1_(register_module("conv1", conv(in, planes, 1, 1))),
      bn1_(register_module("bn1", torch::nn::BatchNorm2d(planes))),
      conv2_(register_module("conv2", conv(planes, planes, 3, stride))),
      bn2_(register_module("bn2", torch::nn::BatchNorm2d(planes))),
      conv3_(register_module("conv3", conv(planes, planes * kExpansion, 1, 1))),
      bn3_(register_module("bn3", torch::nn::BatchNorm2d(planes * kExpansion))),
      downsample_(make_downsample(in, planes * kExpansion, stride)) {
  if (!downsample_->is_empty()) register_module("downsample", downsample_);
}

at::Tensor BottleneckImpl::forward(const at::Tensor& x) {
  at::Tensor out = at::relu(bn1_->forward(conv1_->forward(x)));
  out = at::relu(bn2_->forward(conv2_->forward(out)));
  out = bn3_->forward(conv3_->forward(out));
  return at::relu(out + shortcut(downsample_, x));
}

}  // namespace loom::builtin::resnet
