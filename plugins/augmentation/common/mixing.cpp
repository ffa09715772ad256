#include "augmentation/common/mixing.h"

#include <ATen/ATen.h>

#include <stdexcept>

namespace loom::augmentation {

double draw_beta(double alpha, at::Generator& generator) {
  const at::Tensor g = at::_standard_gamma(at::full({2}, alpha, at::TensorOptions().dtype(at::kDouble)), generator);
  const double a = g[0].item<double>(), b = g[1].item<double>();
  return a + b > 0.0 ? a / (a + b) : 0.5;
}

bool draw_batch_chosen(double p, at::Generator& generator) {
  return at::rand({1}, generator, at::TensorOptions().dtype(at::kDouble)).item<double>() < p;
}

at::Tensor soft_targets(const at::Tensor& y, int64_t num_classes, const std::string& op) {
  if (y.dim() == 2 && y.is_floating_point()) {
    if (y.size(1) != num_classes)
      throw std::invalid_argument(op + ": soft targets have " + std::to_string(y.size(1)) +
                                  " classes, the dataset declares " + std::to_string(num_classes));
    return y;
  }
  if (y.dim() != 1 || y.scalar_type() != at::kLong)
    throw std::invalid_argument(op + ": needs int64 class targets [B] or float class probabilities [B, C], got a " +
                                std::to_string(y.dim()) + "-dimensional " + std::string(c10::toString(y.scalar_type())) +
                                " tensor");
  if (y.numel() > 0) {
    const int64_t lo = y.min().item<int64_t>(), hi = y.max().item<int64_t>();
    if (lo < 0 || hi >= num_classes)
      throw std::invalid_argument(op + ": a target class (" + std::to_string(lo < 0 ? lo : hi) +
                                  ") is outside the dataset's " + std::to_string(num_classes) + " classes");
  }
  return at::one_hot(y, num_classes).to(at::kFloat);
}

at::Tensor mix_with_rolled(const at::Tensor& t, double lam) { return t.roll(1, 0).mul(1.0 - lam).add(t.mul(lam)); }

void mix_targets(AugmentBatch& batch, double lam, int64_t num_classes, const std::string& op) {
  const at::Tensor soft = soft_targets(batch.y, num_classes, op);
  batch.y = lam == 1.0 ? soft : mix_with_rolled(soft, lam);
  if (batch.w.defined() && lam != 1.0) batch.w = mix_with_rolled(batch.w, lam);
}

}  // namespace loom::augmentation
