// Fashion-MNIST from the four gzipped IDX files (Debian's dataset-fashion-mnist package by default).
#pragma once

#include <loom/plugin.h>

#include <ATen/core/Tensor.h>

#include <string>

namespace loom::builtin {

class FashionMnist final : public Dataset {
 public:
  static FeatureInfo info();
  explicit FashionMnist(const CreateContext& ctx);

  SampleSpec spec() const override;
  int64_t size() const override;
  at::Tensor indices(Split split) const override;
  at::Tensor labels() const override;
  at::Tensor load(const at::Tensor& indices) const override;
  std::string fingerprint() const override;

 private:
  void make_splits(const Params& params, int64_t n_train);

  // Raw pixels of train (0..59999) then test (60000..69999): uint8 [70000, 1, 28, 28], never modified.
  at::Tensor images_;
  at::Tensor labels_;  // int64 [70000]
  SplitIndices splits_;
  std::string normalize_;
  // load() computes x * scale_ + shift_, so the padding of a crop can use the value of a black pixel.
  double scale_ = 1.0, shift_ = 0.0;
  std::string fingerprint_;
};

}  // namespace loom::builtin
