#include "resize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::image {
namespace {

// The taps of one output coordinate: input `start`, `count` weights (summing to 1) in `weights`.
struct Taps {
  std::vector<int64_t> start, count;
  int64_t stride = 0;  // weights per output coordinate in `weights`
  std::vector<float> weights;
};

double triangle(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double cubic(double x) {
  constexpr double a = -0.5;  // PIL's and torch's antialiased bicubic (torch's plain bicubic uses -0.75)
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// PIL's precompute_coeffs (and torch's _compute_indices_min_size_weights_aa): the filter is sampled at
// input pixel centres; shrinking by `scale` stretches it by `scale`.
Taps filter_taps(int64_t in, int64_t out, double (*filter)(double), double support) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double filter_scale = std::max(scale, 1.0);
  const double inverse = 1.0 / filter_scale;
  support *= filter_scale;
  Taps taps;
  taps.stride = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  taps.weights.assign(static_cast<size_t>(out * taps.stride), 0.0f);
  std::vector<double> w(static_cast<size_t>(taps.stride));
  for (int64_t i = 0; i < out; ++i) {
    const double center = (static_cast<double>(i) + 0.5) * scale;
    // Truncation toward zero, as the C casts in PIL and torch.
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
    const int64_t count = std::min(hi - lo, taps.stride);
    double total = 0.0;
    for (int64_t k = 0; k < count; ++k) {
      w[static_cast<size_t>(k)] = filter((static_cast<double>(k + lo) - center + 0.5) * inverse);
      total += w[static_cast<size_t>(k)];
    }
    for (int64_t k = 0; k < count; ++k)
      taps.weights[static_cast<size_t>(i * taps.stride + k)] =
          static_cast<float>(total != 0.0 ? w[static_cast<size_t>(k)] / total : 0.0);
    taps.start.push_back(lo);
    taps.count.push_back(count);
  }
  return taps;
}

// Exact area averaging: output pixel i covers [i * scale, (i + 1) * scale) of the input.
Taps area_taps(int64_t in, int64_t out) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  Taps taps;
  taps.stride = static_cast<int64_t>(std::ceil(scale)) + 2;
  taps.weights.assign(static_cast<size_t>(out * taps.stride), 0.0f);
  for (int64_t i = 0; i < out; ++i) {
    const double begin = static_cast<double>(i) * scale, end = std::min(static_cast<double>(i + 1) * scale, double(in));
    const int64_t lo = static_cast<int64_t>(std::floor(begin));
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(std::ceil(end)), in);
    double total = 0.0;
    std::vector<double> w;
    for (int64_t j = lo; j < hi; ++j) {
      w.push_back(std::max(0.0, std::min(end, double(j + 1)) - std::max(begin, double(j))));
      total += w.back();
    }
    const auto count = static_cast<int64_t>(w.size());
    for (int64_t k = 0; k < count; ++k)
      taps.weights[static_cast<size_t>(i * taps.stride + k)] = static_cast<float>(w[static_cast<size_t>(k)] / total);
    taps.start.push_back(lo);
    taps.count.push_back(count);
  }
  return taps;
}

Taps make_taps(int64_t in, int64_t out, Interpolation mode) {
  switch (mode) {
    case Interpolation::Bilinear: return filter_taps(in, out, triangle, 1.0);
    case Interpolation::Bicubic: return filter_taps(in, out, cubic, 2.0);
    case Interpolation::Area: return area_taps(in, out);
    case Interpolation::Nearest: break;
  }
  throw std::logic_error("make_taps: nearest has no filter");
}

uint8_t to_byte(float v) {
  v = std::nearbyint(v);  // the default rounding mode: half to even, like torch.round
  return v <= 0.0f ? 0 : v >= 255.0f ? 255 : static_cast<uint8_t>(v);
}

void resize_nearest(const uint8_t* in, int64_t height, int64_t width, int channels, uint8_t* out,
                    int64_t out_height, int64_t out_width) {
  // torch's nearest_idx for "nearest-exact": the scale in float, floor((i + 0.5) * scale).
  auto source = [](int64_t in_size, int64_t out_size) {
    const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
    std::vector<int64_t> index(static_cast<size_t>(out_size));
    for (int64_t i = 0; i < out_size; ++i)
      index[static_cast<size_t>(i)] =
          std::min<int64_t>(static_cast<int64_t>(std::floor((static_cast<float>(i) + 0.5f) * scale)), in_size - 1);
    return index;
  };
  const std::vector<int64_t> rows = source(height, out_height), cols = source(width, out_width);
  for (int64_t y = 0; y < out_height; ++y) {
    const uint8_t* src = in + rows[static_cast<size_t>(y)] * width * channels;
    uint8_t* dst = out + y * out_width * channels;
    for (int64_t x = 0; x < out_width; ++x)
      for (int c = 0; c < channels; ++c) dst[x * channels + c] = src[cols[static_cast<size_t>(x)] * channels + c];
  }
}

}  // namespace

Interpolation parse_interpolation(std::string_view name) {
  if (name == "nearest") return Interpolation::Nearest;
  if (name == "bilinear") return Interpolation::Bilinear;
  if (name == "bicubic") return Interpolation::Bicubic;
  if (name == "area") return Interpolation::Area;
  throw std::invalid_argument("unknown interpolation '" + std::string(name) +
                              "' (expected nearest, bilinear, bicubic or area)");
}

void resize(const uint8_t* in, int64_t height, int64_t width, int channels, uint8_t* out, int64_t out_height,
            int64_t out_width, Interpolation mode) {
  if (height <= 0 || width <= 0 || out_height <= 0 || out_width <= 0 || channels <= 0)
    throw std::invalid_argument("resize: sizes must be positive");
  if (mode == Interpolation::Nearest) return resize_nearest(in, height, width, channels, out, out_height, out_width);

  // Horizontal pass into float rows (height x out_width x channels), then the vertical pass, as PIL and
  // torch do; the intermediate stays float, so there is exactly one rounding.
  const int64_t row = out_width * channels;
  std::vector<float> horizontal(static_cast<size_t>(height * row));
  if (out_width == width) {
    std::copy(in, in + height * row, horizontal.begin());
  } else {
    const Taps taps = make_taps(width, out_width, mode);
    for (int64_t y = 0; y < height; ++y) {
      const uint8_t* src = in + y * width * channels;
      float* dst = horizontal.data() + y * row;
      for (int64_t x = 0; x < out_width; ++x) {
        const float* w = taps.weights.data() + x * taps.stride;
        const uint8_t* s = src + taps.start[static_cast<size_t>(x)] * channels;
        for (int c = 0; c < channels; ++c) {
          float sum = 0.0f;
          for (int64_t k = 0; k < taps.count[static_cast<size_t>(x)]; ++k) sum += w[k] * static_cast<float>(s[k * channels + c]);
          dst[x * channels + c] = sum;
        }
      }
    }
  }

  if (out_height == height) {
    std::transform(horizontal.begin(), horizontal.end(), out, to_byte);
    return;
  }
  const Taps taps = make_taps(height, out_height, mode);
  std::vector<float> sum(static_cast<size_t>(row));
  for (int64_t y = 0; y < out_height; ++y) {
    std::fill(sum.begin(), sum.end(), 0.0f);
    const float* w = taps.weights.data() + y * taps.stride;
    for (int64_t k = 0; k < taps.count[static_cast<size_t>(y)]; ++k) {
      const float* src = horizontal.data() + (taps.start[static_cast<size_t>(y)] + k) * row;
      for (int64_t i = 0; i < row; ++i) sum[static_cast<size_t>(i)] += w[k] * src[i];
    }
    std::transform(sum.begin(), sum.end(), out + y * row, to_byte);
  }
}

}  // namespace loom::image
