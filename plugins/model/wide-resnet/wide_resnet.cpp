#include "wide_resnet.h"

#include "common/model/state_dict_file.h"

#include <ATen/ops/adaptive_avg_pool2d.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/relu.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/init.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace loom::builtin {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

WideResNetOptions options_from(const CreateContext& ctx) {
  if (!ctx.dataset) throw std::logic_error("wide-resnet: created without a dataset");
  const SampleSpec spec = ctx.dataset->spec();
  if (spec.shape.size() != 3)
    throw std::invalid_argument("wide-resnet: needs image samples shaped [C, H, W], the dataset's are " +
                                shape_string(spec.shape));
  return {.depth = ctx.params.integer("depth"),
          .widen = ctx.params.integer("widen"),
          .dropout = ctx.params.real("dropout"),
          .in_channels = spec.shape[0],
          .num_classes = spec.num_classes};
}

}  // namespace

WideBlockImpl::WideBlockImpl(int64_t in, int64_t out, int64_t stride, double dropout)
    : dropout_(dropout),
      bn1_(register_module("bn1", torch::nn::BatchNorm2d(in))),
      conv1_(register_module("conv1", conv(in, out, 3, stride))),
      bn2_(register_module("bn2", torch::nn::BatchNorm2d(out))),
      conv2_(register_module("conv2", conv(out, out, 3, 1))) {
  if (in != out) shortcut_ = register_module("convShortcut", conv(in, out, 1, stride));
}

at::Tensor WideBlockImpl::forward(const at::Tensor& x) {
  const at::Tensor pre = at::relu(bn1_->forward(x));
  at::Tensor out = at::relu(bn2_->forward(conv1_->forward(pre)));
  if (dropout_ > 0.0) out = at::dropout(out, dropout_, is_training());
  out = conv2_->forward(out);
  return (shortcut_ ? shortcut_->forward(pre) : x) + out;
}

WideGroupImpl::WideGroupImpl(int64_t blocks, int64_t in, int64_t out, int64_t stride, double dropout) {
  for (int64_t b = 0; b < blocks; ++b)
    layer_->push_back(std::make_shared<WideBlockImpl>(b == 0 ? in : out, out, b == 0 ? stride : 1, dropout));
  register_module("layer", layer_);
}

FeatureInfo WideResNet::info() {
  return {
      .name = "wide-resnet",
      .version = "1.0.0",
      .summary = "WRN-depth-widen (Zagoruyko & Komodakis), pre-activation blocks, as the authors' PyTorch port",
      .params = {
          ParamSpec::integer("depth", 28).doc("total depth; (depth - 4) % 6 == 0, e.g. 16, 22, 28, 40"),
          ParamSpec::integer("widen", 2).doc("width factor k >= 1: groups of 16k, 32k, 64k channels"),
          ParamSpec::real("dropout", 0.0).range(0.0, 0.9).doc("dropout probability between the two convs of a block"),
          ParamSpec::path("weights").doc("optional state_dict to load by name: torch.save(model.state_dict(), path)"),
      },
  };
}

WideResNet::WideResNet(const CreateContext& ctx) : WideResNet(options_from(ctx)) {
  if (ctx.params.has("weights") && !ctx.params.str("weights").empty())
    model_common::load_state_dict_file(*this, ctx.params.str("weights"), "wide-resnet");
}

WideResNet::WideResNet(const WideResNetOptions& options) {
  const int64_t depth = options.depth, widen = options.widen;
  if (depth < 10 || (depth - 4) % 6 != 0)
    throw std::invalid_argument("wide-resnet: depth " + std::to_string(depth) +
                                " is not 6n + 4 with n >= 1; valid depths are 10, 16, 22, 28, 34, 40, …");
  if (widen < 1 || widen > 64)
    throw std::invalid_argument("wide-resnet: widen " + std::to_string(widen) +
                                " is not a valid width factor; valid: 1 <= widen <= 64 (e.g. 2, 8, 10)");
  if (options.in_channels < 1 || options.num_classes < 1)
    throw std::invalid_argument("wide-resnet: needs at least one input channel and one class");
  const int64_t blocks = (depth - 4) / 6;
  const std::array<int64_t, 4> width = {16, 16 * widen, 32 * widen, 64 * widen};

  conv1_ = register_module("conv1", conv(options.in_channels, width[0], 3, 1));
  for (size_t g = 0; g < groups_.size(); ++g)
    groups_[g] = register_module("block" + std::to_string(g + 1),
                                 std::make_shared<WideGroupImpl>(blocks, width[g], width[g + 1], g == 0 ? 1 : 2,
                                                                 options.dropout));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(width[3]));
  fc_ = register_module("fc", torch::nn::Linear(width[3], options.num_classes));

  // The reference's initialisation: convs N(0, 2 / (k*k*out)) (He-normal, fan_out), BatchNorm 1/0,
  // Linear bias 0 (its weight keeps the default initialisation).
  torch::NoGradGuard no_grad;
  for (const auto& module : modules(/*include_self=*/false))
    if (auto* c = module->as<torch::nn::Conv2d>())
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
  fc_->bias.zero_();
}

at::Tensor WideResNet::forward(const at::Tensor& input) {
  at::Tensor x = conv1_->forward(input);
  for (auto& group : groups_) x = group->forward(x);
  x = at::relu(bn1_->forward(x));
  // The reference's avg_pool2d(x, 8) is this at 32x32 inputs; adaptive pooling also serves other sizes.
  return fc_->forward(at::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
}

}  // namespace loom::builtin
