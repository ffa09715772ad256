#include "resnet.h"

#include "blocks.h"
#include "common/model/state_dict_file.h"

#include <ATen/ops/adaptive_avg_pool2d.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/relu.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::builtin {
namespace {

using resnet::BasicBlockImpl;
using resnet::BottleneckImpl;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// Blocks per stage, as torchvision's resnet18 … resnet152.
std::array<int64_t, 4> stage_blocks(int64_t depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    case 152: return {3, 8, 36, 3};
    default:
      throw std::invalid_argument("resnet: depth " + std::to_string(depth) +
                                  " is not a ResNet; valid depths are 18, 34 (BasicBlock), 50, 101, 152 (Bottleneck)");
  }
}

int64_t scaled(int64_t base, double width) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(static_cast<double>(base) * width)));
}

ResNetOptions options_from(const CreateContext& ctx) {
  if (!ctx.dataset) throw std::logic_error("resnet: created without a dataset");
  const SampleSpec spec = ctx.dataset->spec();
  if (spec.shape.size() != 3)
    throw std::invalid_argument("resnet: needs image samples shaped [C, H, W], the dataset's are " +
                                shape_string(spec.shape));
  ResNetOptions o;
  o.depth = ctx.params.integer("depth");
  o.cifar_stem = ctx.params.str("stem") == "cifar";
  o.width = ctx.params.real("width");
  o.zero_init_residual = ctx.params.boolean("zero_init_residual");
  o.dropout = ctx.params.real("dropout");
  o.in_channels = spec.shape[0];
  o.num_classes = spec.num_classes;
  return o;
}

}  // namespace

FeatureInfo ResNet::info() {
  return {
      .name = "resnet",
      .version = "1.0.0",
      .summary = "torchvision's ResNet-18/34/50/101/152 (same parameter names: torchvision weights load by name)",
      .params = {
          ParamSpec::integer("depth", 18).doc("18 or 34 (BasicBlock), 50, 101 or 152 (Bottleneck)"),
          ParamSpec::choice("stem", "imagenet", {"imagenet", "cifar"})
              .doc("imagenet: 7x7/2 conv + 3x3/2 max-pool; cifar: 3x3/1 conv, no pool (28-64 px inputs)"),
          ParamSpec::real("width", 1.0).doc("multiplier on the 64/128/256/512 base widths, 0 < width <= 16; 1 = torchvision"),
          ParamSpec::boolean("zero_init_residual", false).doc("zero each block's last BatchNorm weight (torchvision's flag)"),
          ParamSpec::real("dropout", 0.0).range(0.0, 0.9).doc("dropout probability before the final Linear"),
          ParamSpec::path("weights").doc("optional state_dict to load by name: torch.save(model.state_dict(), path)"),
      },
  };
}

ResNet::ResNet(const CreateContext& ctx) : ResNet(options_from(ctx)) {
  if (ctx.params.has("weights") && !ctx.params.str("weights").empty())
    model_common::load_state_dict_file(*this, ctx.params.str("weights"), "resnet");
}

ResNet::ResNet(const ResNetOptions& options) : options_(options) {
  const std::array<int64_t, 4> blocks = stage_blocks(options.depth);
  if (!(options.width > 0.0 && options.width <= 16.0))
    throw std::invalid_argument("resnet: width " + std::to_string(options.width) +
                                " is not a valid multiplier; valid: 0 < width <= 16 (1 = torchvision's widths)");
  if (options.in_channels < 1 || options.num_classes < 1)
    throw std::invalid_argument("resnet: needs at least one input channel and one class");
  const bool bottleneck = options.depth >= 50;

  int64_t in = scaled(64, options.width);
  const int64_t stem_kernel = options.cifar_stem ? 3 : 7;
  conv1_ = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels, in, stem_kernel)
                                                          .stride(options.cifar_stem ? 1 : 2)
                                                          .padding(stem_kernel / 2)
                                                          .bias(false)));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(in));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t planes = scaled(int64_t{64} << i, options.width);
    layers_[i] = register_module("layer" + std::to_string(i + 1),
                                 make_layer(in, planes, blocks[i], i == 0 ? 1 : 2, bottleneck));
  }
  fc_ = register_module("fc", torch::nn::Linear(in, options.num_classes));

  // torchvision's initialisation: He-normal (fan_out) convolutions; BatchNorm starts at weight 1, bias 0
  // (LibTorch's default, as PyTorch's); Linear keeps its default initialisation.
  torch::NoGradGuard no_grad;
  for (const auto& module : modules(/*include_self=*/false))
    if (auto* c = module->as<torch::nn::Conv2d>())
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
  if (options.zero_init_residual) {
    for (auto& layer : layers_)
      for (const auto& block : layer->children()) {
        if (auto* b = block->as<BasicBlockImpl>()) b->last_bn()->weight.zero_();
        if (auto* b = block->as<BottleneckImpl>()) b->last_bn()->weight.zero_();
      }
  }
}

torch::nn::Sequential ResNet::make_layer(int64_t& in, int64_t planes, int64_t blocks, int64_t stride, bool bottleneck) {
  torch::nn::Sequential layer;
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t s = b == 0 ? stride : 1;
    if (bottleneck) {
      layer->push_back(std::make_shared<BottleneckImpl>(in, planes, s));
      in = planes * BottleneckImpl::kExpansion;
    } else {
      layer->push_back(std::make_shared<BasicBlockImpl>(in, planes, s));
      in = planes * BasicBlockImpl::kExpansion;
    }
  }
  return layer;
}

at::Tensor ResNet::forward(const at::Tensor& input) {
  at::Tensor x = at::relu(bn1_->forward(conv1_->forward(input)));
  if (!options_.cifar_stem) x = at::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  for (auto& layer : layers_) x = layer->forward(x);
  x = at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  if (options_.dropout > 0.0) x = at::dropout(x, options_.dropout, is_training());
  return fc_->forward(x);
}

}  // namespace loom::builtin
