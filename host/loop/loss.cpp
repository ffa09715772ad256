#include "loop/loss.h"

#include <ATen/ATen.h>

namespace loom::host {

at::Tensor per_sample_loss(const at::Tensor& logits, const at::Tensor& targets, double label_smoothing) {
  const at::Tensor log_probs = at::log_softmax(logits.to(at::kFloat), 1);
  if (targets.dim() == 2) {
    at::Tensor t = targets.to(at::kFloat);
    if (label_smoothing > 0.0) t = t * (1.0 - label_smoothing) + label_smoothing / static_cast<double>(logits.size(1));
    return -(t * log_probs).sum(1);
  }
  at::Tensor nll = at::nll_loss(log_probs, targets, {}, at::Reduction::None);
  if (label_smoothing <= 0.0) return nll;
  // (1 - s)·(-log p_y) + s·mean_c(-log p_c): torch's cross_entropy(label_smoothing = s) per sample.
  return nll * (1.0 - label_smoothing) - log_probs.mean(1) * label_smoothing;
}

at::Tensor target_classes(const at::Tensor& targets) { return targets.dim() == 2 ? targets.argmax(1) : targets; }

}  // namespace loom::host
