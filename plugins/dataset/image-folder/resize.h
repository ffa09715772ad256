// Image resizing as torchvision's Resize(antialias=True) does it on a tensor, and PIL on an image: a
// separable filter whose support widens with the downscaling factor (so downscaling averages instead of
// aliasing), computed in float and rounded back to uint8 once at the end.
//
// Free of LibTorch on purpose: plain loops over byte buffers, called per image from parallel workers.
#pragma once

#include <cstdint>
#include <string_view>

namespace loom::image {

enum class Interpolation {
  Nearest,   ///< source pixel floor((x + 0.5) * in / out): torch's "nearest-exact", PIL's NEAREST
  Bilinear,  ///< triangle filter: torch's "bilinear" with antialias=True, PIL's BILINEAR
  Bicubic,   ///< cubic filter with a = -0.5: torch's "bicubic" with antialias=True, PIL's BICUBIC
  Area,      ///< mean over each output pixel's footprint, partial pixels weighted by coverage (OpenCV's
             ///< INTER_AREA when shrinking; torch's "area" and PIL's BOX for whole-number factors)
};

/// Parses "nearest" | "bilinear" | "bicubic" | "area"; throws std::invalid_argument otherwise.
Interpolation parse_interpolation(std::string_view name);

/// Resizes interleaved pixels `in` (height x width x channels) into `out` (out_height x out_width x
/// channels). Each output value is the filter's weighted sum in float, rounded half to even (torch.round,
/// as torchvision does for uint8 tensors) and clamped to 0..255. Sizes must be positive.
void resize(const uint8_t* in, int64_t height, int64_t width, int channels, uint8_t* out, int64_t out_height,
            int64_t out_width, Interpolation mode);

}  // namespace loom::image
