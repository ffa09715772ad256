// Deterministic generated data for tests: noisy copies of one random prototype image per class.
#pragma once

#include <loom/plugin.h>

#include <ATen/core/Tensor.h>

#include <string>

namespace loom::builtin {

class Synthetic final : public Dataset {
 public:
  static FeatureInfo info();
  explicit Synthetic(const CreateContext& ctx);

  SampleSpec spec() const override;
  int64_t size() const override;
  at::Tensor indices(Split split) const override;
  at::Tensor labels() const override;
  at::Tensor load(const at::Tensor& indices) const override;
  std::string fingerprint() const override;

 private:
  SampleSpec spec_;
  at::Tensor samples_;  // float [size, C, H, W], generated once
  at::Tensor labels_;   // int64 [size]
  SplitIndices splits_;
  std::string fingerprint_;
};

}  // namespace loom::builtin
