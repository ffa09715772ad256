#include "logistic_regression.h"

#include <stdexcept>

namespace example {

loom::FeatureInfo LogisticRegression::info() {
  return {.name = "logistic-regression",
          .version = "1.0.0",
          .summary = "flatten + one linear layer (softmax regression); a third-party plugin example",
          .params = {loom::ParamSpec::boolean("bias", true).doc("learn a per-class bias")}};
}

LogisticRegression::LogisticRegression(const loom::CreateContext& ctx) {
  // The host validated the params against info().params: no parsing, no defaults here.
  if (!ctx.dataset) throw std::invalid_argument("logistic-regression needs the dataset's sample shape");
  const loom::SampleSpec spec = ctx.dataset->spec();
  int64_t features = 1;
  for (int64_t d : spec.shape) features *= d;
  linear_ = register_module("linear", torch::nn::Linear(
                                          torch::nn::LinearOptions(features, spec.num_classes).bias(ctx.params.boolean("bias"))));
}

at::Tensor LogisticRegression::forward(const at::Tensor& input) { return linear_->forward(input.flatten(1)); }

}  // namespace example
