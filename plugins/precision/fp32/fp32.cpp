#include "fp32.h"

#include "../common/precision_common.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>

namespace loom::builtin {
namespace {

// Turns autocast off for one device type and restores the previous state, so a float32 forward stays
// float32 even if something up the stack enabled autocast.
class AutocastOff final : public ForwardScope {
 public:
  explicit AutocastOff(c10::DeviceType type)
      : type_(type),
        was_enabled_(at::autocast::is_autocast_available(type) && at::autocast::is_autocast_enabled(type)) {
    if (was_enabled_) at::autocast::set_autocast_enabled(type_, false);
  }
  ~AutocastOff() override {
    if (was_enabled_) at::autocast::set_autocast_enabled(type_, true);
  }
  AutocastOff(const AutocastOff&) = delete;
  AutocastOff& operator=(const AutocastOff&) = delete;

 private:
  c10::DeviceType type_;
  bool was_enabled_;
};

}  // namespace

FeatureInfo Fp32::info() {
  return {
      .name = "fp32",
      .version = "1.0.0",
      .summary = "float32 training without autocast or loss scaling, with optional gradient clipping",
      .params = {
          precision_common::max_grad_norm_param(),
          precision_common::memory_format_param(),
          precision_common::channels_last_removed_param(),
          ParamSpec::boolean("tf32", false).doc("allow TF32 in cuBLAS and cuDNN (CUDA only)"),
          ParamSpec::choice("matmul_precision", "highest", {"highest", "high", "medium"})
              .doc("float32 matmul precision (at::globalContext().setFloat32MatmulPrecision)"),
      },
  };
}

Fp32::Fp32(const CreateContext& ctx)
    : max_grad_norm_(ctx.params.real("max_grad_norm")),
      memory_format_(ctx.params.str("memory_format")),
      tf32_(ctx.params.boolean("tf32")),
      matmul_precision_(ctx.params.str("matmul_precision")) {}

PreparedModel Fp32::prepare(torch::nn::Module& model, c10::Device device) {
  PreparedModel prepared = precision_common::apply_memory_format(memory_format_, model, device, /*reduced=*/false);
  // Process-wide switches: applied here, when the run starts training, not when `loom check` merely
  // constructs the plugin. The matmul precision goes first because it also sets cuBLAS's TF32 flag.
  at::Context& context = at::globalContext();
  context.setFloat32MatmulPrecision(matmul_precision_);
  if (device.is_cuda()) {
    if (tf32_) context.setAllowTF32CuBLAS(true);
    context.setAllowTF32CuDNN(tf32_);
  }
  return prepared;
}

std::unique_ptr<ForwardScope> Fp32::forward_scope(c10::Device device) {
  return std::make_unique<AutocastOff>(device.type());
}

void Fp32::backward(const at::Tensor& loss) { loss.backward(); }

StepResult Fp32::step(torch::optim::Optimizer& optimizer) {
  StepResult result;
  result.grad_norm = precision_common::clip_gradients(optimizer, max_grad_norm_);
  optimizer.step();
  return result;
}

}  // namespace loom::builtin
