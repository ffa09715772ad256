// An augmentation op transforms training batches: random crops, flips, RandAugment, random erasing,
// mixup/CutMix. Ops form ordered pipelines ([[augmentation]] tables, run in file order); each table may
// name the pipeline it belongs to (`pipeline = "strong"`, default "default"), and a training stage asks
// for one pipeline by name (TrainRequest::augmentation). A pipeline runs per training micro-batch, after
// any cache, on the training device; evaluation and prediction never augment.
//
//   [[augmentation]]
//   plugin = "random-crop"
//   padding = 4
//   [[augmentation]]
//   plugin = "randaugment"
//   pipeline = "strong"
//
// Contract for an op:
//   - batched tensor ops on whatever device the batch is on (CPU or CUDA), never a loop over samples
//     that calls a kernel per sample;
//   - every random number from the generator it is handed: a CPU generator the host derives from the run
//     seed, stage, epoch and micro-batch index, so a resumed run replays the same augmentation exactly.
//     Draw per-sample parameters on the CPU with it and move them to the batch's device;
//   - decisions per sample (a batch holds independent images), `p` being each sample's probability;
//   - ops that need pixel values (solarize, posterize, …) work through the dataset's declared pixel
//     affine (SampleSpec::pixel_scale/pixel_shift; see to_unit_pixels()) and refuse, in the factory, a
//     dataset that declares none — the run then fails at config time with the op's message.
// The factory receives the run's dataset in CreateContext::dataset (its spec() gives channels, classes
// and the pixel affine).
//
// Includes: this header gives at::Tensor with its methods, not LibTorch's free operators — `x < p`,
// `a + b`, `1 - m` do not compile with it alone. Use the methods (x.lt(p), a.add(b), m.neg().add(1)),
// which cost nothing more, or include <ATen/TensorOperators.h> for the operators (it brings in
// <ATen/Functions.h>: ~7 s more per source file). Functions such as at::rand come from their own header,
// <ATen/ops/rand.h> (each such header costs a few seconds the first time, for the ATen context it needs);
// <torch/torch.h> has everything at ~20 s a file.
#pragma once

#include <loom/dataset.h>
#include <loom/kinds.h>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <stdexcept>

namespace loom {

/// One training micro-batch as the pipeline sees it.
struct AugmentBatch {
  /// Inputs [B, C, H, W] (or [B, ...] for non-image data) as Dataset::load returns them, on the device.
  at::Tensor x;
  /// Targets: int64 [B] class indices, or float [B, C] class probabilities (soft targets). An op that
  /// mixes samples (mixup, CutMix) returns soft targets; ops after it must accept them.
  at::Tensor y;
  /// Per-sample loss weights, float [B], or undefined (1 each). An op that mixes samples mixes these too.
  at::Tensor w;
};

/// Whether the dataset declares its samples as an affine function of uint8 pixels (SampleSpec).
inline bool has_pixel_affine(const SampleSpec& spec) { return !spec.pixel_scale.empty(); }

/// A batch [B, C, ...] of the dataset's samples as pixel intensities in [0, 1] (pixel / 255), float32 —
/// the domain of torchvision's float-image ops. Inverse of from_unit_pixels. Throws std::invalid_argument
/// when the spec declares no pixel affine or its channel count differs from dim 1 of `x`.
inline at::Tensor to_unit_pixels(const at::Tensor& x, const SampleSpec& spec) {
  if (!has_pixel_affine(spec) || x.dim() < 2 || static_cast<int64_t>(spec.pixel_scale.size()) != x.size(1))
    throw std::invalid_argument("loom::to_unit_pixels: the dataset declares no pixel affine for these channels");
  at::Tensor u = x.to(c10::kFloat, /*non_blocking=*/false, /*copy=*/true);
  for (int64_t c = 0; c < x.size(1); ++c) {
    const auto k = static_cast<size_t>(c);
    u.select(1, c).sub_(spec.pixel_shift[k]).div_(spec.pixel_scale[k] * 255.0);
  }
  return u;
}

/// Pixel intensities in [0, 1] back to the dataset's samples (spec.dtype): x = 255 u · scale + shift.
inline at::Tensor from_unit_pixels(const at::Tensor& u, const SampleSpec& spec) {
  if (!has_pixel_affine(spec) || u.dim() < 2 || static_cast<int64_t>(spec.pixel_scale.size()) != u.size(1))
    throw std::invalid_argument("loom::from_unit_pixels: the dataset declares no pixel affine for these channels");
  at::Tensor x = u.to(c10::kFloat, /*non_blocking=*/false, /*copy=*/true);
  for (int64_t c = 0; c < u.size(1); ++c) {
    const auto k = static_cast<size_t>(c);
    x.select(1, c).mul_(spec.pixel_scale[k] * 255.0).add_(spec.pixel_shift[k]);
  }
  return x.to(spec.dtype);
}

class Augmentation {
 public:
  virtual ~Augmentation() = default;
  /// Transforms `batch` (replace its tensors; the inputs may be views of a cache, never write into them
  /// in place). Must be thread-safe for distinct batches: the host may call it from its loader thread.
  virtual void apply(AugmentBatch& batch, at::Generator& generator) const = 0;
};

/// The augmentation kind: after the dataset and cache: ops read the data's spec.
template <>
struct KindTraits<Augmentation> : KindTraitsBase {
  static constexpr Kind kind = Kind::Augmentation;
  static constexpr Cardinality cardinality = Cardinality::Many;
  static constexpr int order = 50;
};

}  // namespace loom
