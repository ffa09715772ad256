// What the randaugment and trivial-augment ops share: torchvision's op spaces (magnitude bins per op, the
// signed ops), the per-sample draws, and the op itself — per sample its own ops, magnitudes and signs,
// applied in the pixel domain (to_unit_pixels -> image ops -> from_unit_pixels) with the batched kernels of
// image_ops.h.
#pragma once

#include "augmentation/common/image_ops.h"

#include <loom/augmentation.h>
#include <loom/context.h>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace loom::augmentation {

/// torchvision.transforms.v2's _AUGMENTATION_SPACE of RandAugment or TrivialAugmentWide (wider ranges).
enum class OpSpace { RandAugment, TrivialAugmentWide };

/// The magnitude bins of every op as torchvision computes them (float32, then read as double) for an
/// h x w image: double [kNumImageOps, bins]; NaN for the ops without a magnitude.
at::Tensor magnitude_table(OpSpace space, int64_t bins, int64_t h, int64_t w);

/// Whether the op's magnitude is negated with probability 1/2 (shear, translate, rotate and the four
/// enhance ops).
bool is_signed(ImageOp op);

struct AutoAugmentSettings {
  std::string name;             ///< the op's plugin name, for messages
  OpSpace space = OpSpace::RandAugment;
  int64_t num_ops = 2;          ///< ops applied one after the other to each sample
  int64_t num_bins = 31;        ///< num_magnitude_bins
  int64_t magnitude = 9;        ///< the bin every op uses; -1: a uniform bin per sample and op
  double magnitude_std = 0.0;   ///< timm's mstd: Gaussian noise on the bin, clipped to [0, num_bins - 1]
  double p = 1.0;               ///< probability that a sample is augmented at all
};

/// One batch's draws, on the CPU: chosen bool [N]; ops int64 [num_ops, N] (Identity where not chosen);
/// magnitudes double [num_ops, N], signed, as torchvision hands them to its ops (0 for ops without one).
struct AutoAugmentDraws {
  at::Tensor chosen, ops, magnitudes;
};

/// The draws from `generator`, in this order: the chosen samples (one uniform each), then per op step the
/// op (uniform over the 14), the bin (uniform, when magnitude = -1) or its noise (one normal each, when
/// magnitude_std > 0), and the sign (one uniform each: negative when <= 0.5, as torchvision).
AutoAugmentDraws draw_auto_augment(const AutoAugmentSettings& settings, int64_t n, int64_t h, int64_t w,
                                   at::Generator& generator);

/// The augmentation op. The factory throws std::invalid_argument for a dataset without a pixel affine or
/// whose samples are not images [C, H, W] with C = 1 or 3.
class AutoAugment final : public Augmentation {
 public:
  AutoAugment(AutoAugmentSettings settings, const CreateContext& ctx);
  void apply(AugmentBatch& batch, at::Generator& generator) const override;

 private:
  AutoAugmentSettings settings_;
  SampleSpec spec_;
};

}  // namespace loom::augmentation
