// What mixup and CutMix share: λ ~ Beta(α, α) drawn from the batch's generator, targets as class
// probabilities, and the mix of a batch's targets and weights with the batch rolled by one sample
// (torchvision.transforms.v2.MixUp/CutMix pair sample i with sample i-1).
#pragma once

#include <loom/augmentation.h>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace loom::augmentation {

/// One draw of λ ~ Beta(alpha, alpha), as the ratio of two Gamma(alpha, 1) draws: one call
/// at::_standard_gamma(at::full({2}, alpha, double), generator) → g, λ = g[0] / (g[0] + g[1]) (0.5 if
/// both are 0, which only a tiny alpha can give). In Python, with the same generator state:
///   g = torch._standard_gamma(torch.full((2,), alpha, dtype=torch.float64), generator=gen)
double draw_beta(double alpha, at::Generator& generator);

/// Whether this batch is mixed: one uniform draw u = at::rand({1}, generator, double), mixed iff u < p.
/// Drawn even when p is 0 or 1, so the stream's position does not depend on p.
bool draw_batch_chosen(double p, at::Generator& generator);

/// Targets as class probabilities [B, num_classes]: int64 class indices one-hot in float32, soft
/// targets as they are. Throws std::invalid_argument (naming `op`) for other shapes, a class count that
/// is not num_classes, or an index outside [0, num_classes).
at::Tensor soft_targets(const at::Tensor& y, int64_t num_classes, const std::string& op);

/// lam · t + (1 - lam) · t.roll(1, 0), computed as torchvision does: t.roll(1, 0) · (1 - lam) + t · lam.
at::Tensor mix_with_rolled(const at::Tensor& t, double lam);

/// Replaces batch.y by the soft targets mixed with weight lam and batch.w (when defined) by the same mix
/// of the weights. lam = 1 leaves the targets one-hot and the weights as they are.
void mix_targets(AugmentBatch& batch, double lam, int64_t num_classes, const std::string& op);

}  // namespace loom::augmentation
