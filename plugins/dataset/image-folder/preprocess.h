// The deterministic part of image-folder's pipeline, per image: channel conversion, resize of the shorter
// side, center crop, and the planar (C, H, W) layout a batch tensor wants. Same order and arithmetic as
// the usual torchvision pipeline `Image.open(p).convert(mode)` -> Resize(n) -> CenterCrop(n).
//
// Free of LibTorch on purpose: it writes into a caller's buffer (a slot of the batch tensor).
#pragma once

#include "decode.h"
#include "resize.h"

#include <cstdint>

namespace loom::image {

struct Preprocess {
  int64_t resize = 0;  ///< shorter side after resizing; 0 keeps the size
  Interpolation interpolation = Interpolation::Bilinear;
  int64_t crop = 0;    ///< side of the square center crop; 0 keeps the whole image
  int channels = 3;    ///< 1 (grey) or 3 (RGB)
};

struct Size {
  int64_t height = 0, width = 0;
  bool operator==(const Size&) const = default;
};

/// torchvision's Resize(n) rule: the shorter side becomes n, the longer int(n * long / short).
Size resized_size(Size in, int64_t shorter);

/// The size an image of size `in` has after resize and crop. Throws std::invalid_argument, saying which
/// parameter to change, when the crop is larger than the resized image.
Size output_size(Size in, const Preprocess& p);

/// Converts `image` to p.channels (grey -> RGB copies the value; RGB -> grey uses PIL's ITU-R 601-2
/// luma, L = (19595 R + 38470 G + 7471 B + 2^15) >> 16), resizes it, center-crops it and writes the
/// result planar, channel by channel, to `out` (p.channels x output_size() bytes).
void preprocess(const Image& image, const Preprocess& p, uint8_t* out);

}  // namespace loom::image
