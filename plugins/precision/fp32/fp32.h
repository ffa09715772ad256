// Plain float32 training: no autocast, no loss scaling, optional gradient-norm clipping.
#pragma once

#include <loom/plugin.h>

#include <string>

namespace loom::builtin {

class Fp32 final : public Precision {
 public:
  static FeatureInfo info();
  explicit Fp32(const CreateContext& ctx);

  PreparedModel prepare(torch::nn::Module& model, c10::Device device) override;
  std::unique_ptr<ForwardScope> forward_scope(c10::Device device) override;
  void backward(const at::Tensor& loss) override;
  StepResult step(torch::optim::Optimizer& optimizer) override;

 private:
  double max_grad_norm_;
  std::string memory_format_;
  bool tf32_;
  std::string matmul_precision_;
};

}  // namespace loom::builtin
