// Multinomial logistic regression: flatten → one Linear layer. The smallest useful model plugin.
#pragma once

#include <loom/plugin.h>

#include <torch/nn/modules/linear.h>

namespace example {

class LogisticRegression final : public loom::Model {
 public:
  explicit LogisticRegression(const loom::CreateContext& ctx);
  at::Tensor forward(const at::Tensor& input) override;

  static loom::FeatureInfo info();

 private:
  torch::nn::Linear linear_{nullptr};
};

}  // namespace example
