#include "cnn.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include <stdexcept>
#include <string>

namespace loom::builtin {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

FeatureInfo Cnn::info() {
  return {
      .name = "cnn",
      .version = "1.0.0",
      .summary = "small CNN: Conv3x3 [+BatchNorm] + ReLU + MaxPool2 blocks, then Linear-ReLU-Dropout-Linear",
      .params = {
          ParamSpec::int_list("channels", {32, 64}).at_least(1).doc("output channels of each conv block"),
          ParamSpec::boolean("batchnorm", true).doc("BatchNorm2d after each convolution"),
          ParamSpec::integer("hidden", 128).at_least(1).doc("width of the hidden Linear layer of the head"),
          ParamSpec::real("dropout", 0.25).range(0.0, 0.9).doc("dropout probability before the last Linear"),
      },
  };
}

Cnn::Cnn(const CreateContext& ctx) {
  if (!ctx.dataset) throw std::logic_error("cnn: created without a dataset");
  const SampleSpec spec = ctx.dataset->spec();
  if (spec.shape.size() != 3)
    throw std::invalid_argument("cnn: needs image samples shaped [C, H, W], the dataset's are " +
                                shape_string(spec.shape));
  const auto channels = ctx.params.get<std::vector<int64_t>>("channels");
  const bool batchnorm = ctx.params.boolean("batchnorm");

  int64_t in = spec.shape[0], height = spec.shape[1], width = spec.shape[2];
  for (int64_t out : channels) {
    if (height < 2 || width < 2)
      throw std::invalid_argument("cnn: samples of " + shape_string(spec.shape) + " are too small for " +
                                  std::to_string(channels.size()) + " pooling stages");
    // The BatchNorm that follows has its own shift, which makes a conv bias redundant.
    features_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(!batchnorm)));
    if (batchnorm) features_->push_back(torch::nn::BatchNorm2d(out));
    features_->push_back(torch::nn::ReLU());
    features_->push_back(torch::nn::MaxPool2d(2));
    in = out;
    height /= 2;
    width /= 2;
  }
  const int64_t hidden = ctx.params.integer("hidden");
  head_->push_back(torch::nn::Linear(in * height * width, hidden));
  head_->push_back(torch::nn::ReLU());
  head_->push_back(torch::nn::Dropout(ctx.params.real("dropout")));
  head_->push_back(torch::nn::Linear(hidden, spec.num_classes));
  register_module("features", features_);
  register_module("head", head_);
}

at::Tensor Cnn::forward(const at::Tensor& input) { return head_->forward(features_->forward(input).flatten(1)); }

}  // namespace loom::builtin
