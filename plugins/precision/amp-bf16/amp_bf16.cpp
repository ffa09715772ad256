#include "amp_bf16.h"

#include "../common/precision_common.h"

namespace loom::builtin {

namespace pc = precision_common;

FeatureInfo AmpBf16::info() {
  return {
      .name = "amp-bf16",
      .version = "1.0.0",
      .summary = "mixed precision: autocast to bfloat16 (CPU or CUDA), float32 weights, no loss scaling",
      .params = {
          pc::max_grad_norm_param(),
          pc::memory_format_param(),
          pc::channels_last_removed_param(),
          ParamSpec::boolean("cache_enabled", true)
              .doc("autocast's weight-cast cache inside a forward scope (torch.autocast's cache_enabled)"),
      },
  };
}

AmpBf16::AmpBf16(const CreateContext& ctx)
    : max_grad_norm_(ctx.params.real("max_grad_norm")),
      memory_format_(ctx.params.str("memory_format")),
      cache_enabled_(ctx.params.boolean("cache_enabled")) {}

PreparedModel AmpBf16::prepare(torch::nn::Module& model, c10::Device device) {
  pc::require_autocast(device.type(), "amp-bf16");
  PreparedModel prepared = pc::apply_memory_format(memory_format_, model, device, /*reduced=*/true);
  return prepared;
}

std::unique_ptr<ForwardScope> AmpBf16::forward_scope(c10::Device device) {
  pc::require_autocast(device.type(), "amp-bf16");
  return std::make_unique<pc::AutocastScope>(device.type(), at::kBFloat16, cache_enabled_);
}

void AmpBf16::backward(const at::Tensor& loss) { loss.backward(); }

StepResult AmpBf16::step(torch::optim::Optimizer& optimizer) {
  StepResult result;
  result.grad_norm = pc::clip_gradients(optimizer, max_grad_norm_);
  optimizer.step();
  return result;
}

}  // namespace loom::builtin
