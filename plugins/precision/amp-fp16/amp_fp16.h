// Automatic mixed precision with float16: autocast to float16 (CUDA; CPU too, where LibTorch 2.15 has
// float16 autocast kernels) plus a dynamic loss scaler with torch.amp.GradScaler's algorithm, defaults
// and checkpointed state. LibTorch has no C++ GradScaler (pytorch/pytorch#44710); this one is built on
// the same ATen ops as Python's (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_), so the
// scale and growth tracker live on the training device and never leave it, except for the one
// "was anything non-finite?" read per optimizer step that decides whether optimizer.step() runs.
#pragma once

#include <string>

#include <loom/plugin.h>

namespace loom::builtin {

class AmpFp16 final : public Precision {
 public:
  static FeatureInfo info();
  explicit AmpFp16(const CreateContext& ctx);

  PreparedModel prepare(torch::nn::Module& model, c10::Device device) override;
  std::unique_ptr<ForwardScope> forward_scope(c10::Device device) override;
  /// (loss * scale).backward(): gradients accumulate scaled until step() unscales them once.
  void backward(const at::Tensor& loss) override;
  /// Unscale (once) → inf/NaN check → clip the unscaled gradients → optimizer.step() unless non-finite
  /// → update the scale (backoff on inf/NaN, growth after growth_interval clean steps, min_scale floor).
  StepResult step(torch::optim::Optimizer& optimizer) override;

  /// {"scale": float32, "growth_tracker": int32, "epoch_skipped_steps": int64}, all 0-dim on the CPU;
  /// empty when loss_scaling is off (like GradScaler(enabled=False).state_dict()).
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  /// {"loss_scale": the current scale, "skipped_steps": steps skipped since the last call}.
  std::map<std::string, MetricValue> epoch_metrics() override;

 private:
  void place_on(c10::Device device);

  Logger& logger_;
  double max_grad_norm_;
  std::string memory_format_;
  bool cache_enabled_;
  bool scaling_;
  double growth_factor_;
  double backoff_factor_;
  int64_t growth_interval_;
  double min_scale_;

  at::Tensor scale_;           // float32, 0-dim; created on the CPU, moved to the loss's device once
  at::Tensor growth_tracker_;  // int32, 0-dim; clean steps in a row since the last growth or backoff
  bool placed_ = false;
  int64_t epoch_skipped_ = 0;
  int64_t consecutive_skipped_ = 0;
  bool warned_streak_ = false;
};

}  // namespace loom::builtin
