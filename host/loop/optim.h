// The built-in [optimizer] and [lr_schedule]. The schedule is a pure function of the optimizer-step
// count, so it is counted in optimizer steps (never micro-batches) and resumes from one integer.
//
// SGD and AdamW come in three implementations with the same arithmetic as torch.optim's:
//   loop     LibTorch's torch::optim::SGD / AdamW: one small kernel chain per parameter tensor
//   foreach  torch.optim's foreach=True: each update is one _foreach_* call over every tensor of a group
//   fused    torch.optim's fused=True: one _fused_sgd_ / _fused_adamw_ kernel per group (CPU and CUDA)
// All three keep LibTorch's per-parameter state (SGDParamState, AdamWParamState), so checkpoints do not
// depend on the implementation and a run may resume with another one.
#pragma once

#include <loom/params.h>

#include <torch/optim/optimizer.h>

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace loom::host {

enum class OptimizerImpl { Loop, Foreach, Fused };

const char* to_string(OptimizerImpl impl);

/// The implementation `auto` means on `device`: fused where PyTorch has fused kernels (CPU, CUDA),
/// foreach elsewhere.
OptimizerImpl auto_optimizer_impl(const c10::Device& device);

struct BuiltOptimizer {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  OptimizerImpl impl = OptimizerImpl::Loop;
  std::string description;  ///< one line for the log: name, implementation, parameter groups
};

/// Builds [optimizer] over `named` (module.named_parameters() order). With no_decay_norm_and_bias, every
/// tensor of at most one dimension (biases, norm weights) or named "*bias" goes into a second parameter
/// group without weight decay (timm's rule); the first group keeps the rest.
BuiltOptimizer make_optimizer(const Params& params, const std::vector<std::pair<std::string, at::Tensor>>& named,
                              const c10::Device& device);

class LrSchedule {
 public:
  LrSchedule(const Params& schedule, double base_lr, int64_t total_steps);
  /// Learning rate for the optimizer step with 0-based index `step`.
  double lr(int64_t step) const;
  /// Sets every param group's lr to lr(step).
  void apply(torch::optim::Optimizer& optimizer, int64_t step) const;
  int64_t total_steps() const { return total_; }

 private:
  std::string name_;
  double base_, min_lr_, pct_start_, div_, final_div_;
  int64_t warmup_, total_;
};

}  // namespace loom::host
