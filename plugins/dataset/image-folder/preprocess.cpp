#include "preprocess.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::image {
namespace {

std::vector<uint8_t> convert_channels(const Image& image, int channels) {
  const size_t pixels = static_cast<size_t>(image.width * image.height);
  std::vector<uint8_t> out(pixels * static_cast<size_t>(channels));
  const uint8_t* in = image.pixels.data();
  if (image.channels == 1) {  // grey -> RGB
    for (size_t i = 0; i < pixels; ++i) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = in[i];
  } else {  // RGB -> grey, PIL's fixed-point ITU-R 601-2 luma
    for (size_t i = 0; i < pixels; ++i)
      out[i] = static_cast<uint8_t>((in[3 * i] * 19595u + in[3 * i + 1] * 38470u + in[3 * i + 2] * 7471u + 0x8000u) >> 16);
  }
  return out;
}

// torchvision's CenterCrop: int(round((in - crop) / 2.0)), Python's round being half to even.
int64_t crop_offset(int64_t in, int64_t crop) {
  return static_cast<int64_t>(std::nearbyint(static_cast<double>(in - crop) / 2.0));
}

}  // namespace

Size resized_size(Size in, int64_t shorter) {
  if (shorter <= 0) return in;
  // Python's int(n * long / short): the product, then the division, in double, truncated.
  auto longer = [&](int64_t long_side, int64_t short_side) {
    return static_cast<int64_t>(static_cast<double>(shorter) * static_cast<double>(long_side) /
                                static_cast<double>(short_side));
  };
  if (in.width <= in.height) return {longer(in.height, in.width), shorter};
  return {shorter, longer(in.width, in.height)};
}

Size output_size(Size in, const Preprocess& p) {
  const Size resized = resized_size(in, p.resize);
  if (p.crop <= 0) return resized;
  if (p.crop > resized.height || p.crop > resized.width)
    throw std::invalid_argument("is " + std::to_string(resized.width) + "x" + std::to_string(resized.height) +
                                (p.resize > 0 ? " after resize" : "") + ", smaller than crop = " +
                                std::to_string(p.crop) + "; set resize = " + std::to_string(p.crop) +
                                " (or more) so every image's shorter side is scaled to at least the crop, or lower crop");
  return {p.crop, p.crop};
}

void preprocess(const Image& image, const Preprocess& p, uint8_t* out) {
  const int c = p.channels;
  std::vector<uint8_t> converted;
  const uint8_t* pixels = image.pixels.data();
  if (image.channels != c) {
    converted = convert_channels(image, c);
    pixels = converted.data();
  }

  const Size in{image.height, image.width};
  const Size resized = resized_size(in, p.resize);
  std::vector<uint8_t> resized_pixels;
  if (!(resized == in)) {
    resized_pixels.resize(static_cast<size_t>(resized.height * resized.width * c));
    resize(pixels, in.height, in.width, c, resized_pixels.data(), resized.height, resized.width, p.interpolation);
    pixels = resized_pixels.data();
  }

  const Size final_size = output_size(in, p);
  const int64_t top = crop_offset(resized.height, final_size.height);
  const int64_t left = crop_offset(resized.width, final_size.width);
  const int64_t plane = final_size.height * final_size.width;
  for (int64_t y = 0; y < final_size.height; ++y) {
    const uint8_t* src = pixels + ((top + y) * resized.width + left) * c;
    for (int64_t x = 0; x < final_size.width; ++x)
      for (int ch = 0; ch < c; ++ch) out[ch * plane + y * final_size.width + x] = src[x * c + ch];
  }
}

}  // namespace loom::image
