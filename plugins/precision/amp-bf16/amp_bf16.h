// Automatic mixed precision with bfloat16: the forward pass and loss run under LibTorch's autocast
// (CPU or CUDA), which casts matmul/conv-like ops to bfloat16 and keeps precision-sensitive ops in
// float32. Weights, gradients and the optimizer stay float32. bfloat16 has float32's exponent range, so
// there is no loss scaling.
#pragma once

#include <string>

#include <loom/plugin.h>

namespace loom::builtin {

class AmpBf16 final : public Precision {
 public:
  static FeatureInfo info();
  explicit AmpBf16(const CreateContext& ctx);

  PreparedModel prepare(torch::nn::Module& model, c10::Device device) override;
  std::unique_ptr<ForwardScope> forward_scope(c10::Device device) override;
  void backward(const at::Tensor& loss) override;
  StepResult step(torch::optim::Optimizer& optimizer) override;

 private:
  double max_grad_norm_;
  std::string memory_format_;
  bool cache_enabled_;
};

}  // namespace loom::builtin
