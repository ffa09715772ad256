// Batched random crop (with padding) and horizontal flip for image datasets' augment(): one gather does
// both for the whole batch, with no per-sample loop or stacking.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace loom::dataset_common {

/// Per sample of `batch` ([N, C, H, W], any float dtype, any device): pads every side by `pad` pixels
/// with pad_values[c] in channel c (pass the value a black pixel has after normalisation, so the border
/// looks as if the image had been padded before normalising), takes a random H x W window of the padded
/// image and, when `flip`, mirrors it horizontally with probability 1/2. Reproducible: draws, in this
/// order, the flips (when `flip`), then the vertical and the horizontal offsets from `generator` only.
inline at::Tensor random_crop_flip(const at::Tensor& batch, at::Generator& generator, int64_t pad, bool flip,
                                   const std::vector<double>& pad_values) {
  if (batch.dim() != 4)
    throw std::invalid_argument("random_crop_flip: expected a [N, C, H, W] batch, got " +
                                std::to_string(batch.dim()) + " dimensions");
  const int64_t n = batch.size(0), c = batch.size(1), h = batch.size(2), w = batch.size(3);
  if (n == 0 || (pad == 0 && !flip)) return batch;
  if (static_cast<int64_t>(pad_values.size()) != c)
    throw std::invalid_argument("random_crop_flip: " + std::to_string(pad_values.size()) + " padding values for " +
                                std::to_string(c) + " channels");
  const at::Tensor flips = flip ? at::randint(0, 2, {n, 1}, generator).to(at::kBool) : at::zeros({n, 1}, at::kBool);
  const at::Tensor dy = at::randint(0, 2 * pad + 1, {n, 1}, generator);
  const at::Tensor dx = at::randint(0, 2 * pad + 1, {n, 1}, generator);

  // Per sample, the source pixel (in the padded image) of every output pixel.
  const int64_t padded_w = w + 2 * pad;
  const at::Tensor cols_forward = at::arange(w, at::kLong);
  const at::Tensor rows = dy + at::arange(h, at::kLong);                               // [n, h]
  const at::Tensor cols = dx + at::where(flips, cols_forward.flip(0), cols_forward);  // [n, w]
  const at::Tensor source = (rows.unsqueeze(2) * padded_w + cols.unsqueeze(1)).view({n, 1, h * w});

  at::Tensor padded = batch;
  if (pad > 0) {
    padded = at::empty({n, c, h + 2 * pad, padded_w}, batch.options());
    for (int64_t ch = 0; ch < c; ++ch) padded.select(1, ch).fill_(pad_values[static_cast<size_t>(ch)]);
    padded.narrow(2, pad, h).narrow(3, pad, w).copy_(batch);
  }
  return padded.reshape({n, c, -1})
      .gather(2, source.expand({n, c, h * w}).to(batch.device()))
      .view({n, c, h, w});
}

}  // namespace loom::dataset_common
