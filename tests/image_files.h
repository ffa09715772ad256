// Writes real JPEG and PNG files for the tests with libjpeg's and libpng's own encoders, and small
// image-folder datasets made of them.
#pragma once

#include <cstdio>  // before jpeglib.h, which uses FILE and size_t without including anything
#include <jpeglib.h>
#include <png.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::test {

/// Interleaved 8-bit pixels (height x width x channels), channels 1 or 3.
struct Pixels {
  int64_t height = 0, width = 0;
  int channels = 0;
  std::vector<uint8_t> data;
  uint8_t at(int64_t y, int64_t x, int c) const { return data[static_cast<size_t>((y * width + x) * channels + c)]; }
};

/// A deterministic test picture: smooth gradients plus a pseudo-random texture (so resampling filters
/// and crops are visible), different for each `seed`.
inline Pixels test_pattern(int64_t height, int64_t width, int channels, uint32_t seed, double noise = 40.0) {
  Pixels p{height, width, channels, std::vector<uint8_t>(static_cast<size_t>(height * width * channels))};
  uint32_t state = seed * 2654435761u + 1u;
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c) {
        state = state * 1664525u + 1013904223u;
        const double smooth = 127.5 + 100.0 * std::sin(0.3 * x + 0.17 * y * (c + 1) + seed);
        const double value = smooth + noise * ((state >> 8) / 16777216.0 - 0.5);
        p.data[static_cast<size_t>((y * width + x) * channels + c)] =
            static_cast<uint8_t>(std::lround(std::fmin(255.0, std::fmax(0.0, value))));
      }
  return p;
}

/// A smooth ramp (what JPEG compresses almost losslessly, chroma subsampling included).
inline Pixels gradient(int64_t height, int64_t width, int channels) {
  Pixels p{height, width, channels, {}};
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c) p.data.push_back(static_cast<uint8_t>(40 + 4 * x + 3 * y + 50 * c));
  return p;
}

/// A uniform picture of one value per channel.
inline Pixels solid(int64_t height, int64_t width, std::vector<uint8_t> value) {
  Pixels p{height, width, static_cast<int>(value.size()), {}};
  for (int64_t i = 0; i < height * width; ++i) p.data.insert(p.data.end(), value.begin(), value.end());
  return p;
}

inline void write_png(const std::filesystem::path& file, const Pixels& p) {
  std::filesystem::create_directories(file.parent_path());
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(p.width);
  image.height = static_cast<png_uint_32>(p.height);
  image.format = p.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&image, file.c_str(), 0, p.data.data(), 0, nullptr))
    throw std::runtime_error("write_png " + file.string() + ": " + image.message);
}

inline std::vector<uint8_t> encode_jpeg(const Pixels& p, int quality = 95) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);  // encoding valid pixels cannot fail
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(p.width);
  cinfo.image_height = static_cast<JDIMENSION>(p.height);
  cinfo.input_components = p.channels;
  cinfo.in_color_space = p.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  const size_t stride = static_cast<size_t>(p.width * p.channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(p.data.data()) + cinfo.next_scanline * stride;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> bytes(buffer, buffer + size);
  std::free(buffer);
  return bytes;
}

inline void write_bytes(const std::filesystem::path& file, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void write_jpeg(const std::filesystem::path& file, const Pixels& p, int quality = 95) {
  write_bytes(file, encode_jpeg(p, quality));
}

/// The first `fraction` of a file's bytes: a file cut short, as by an interrupted copy.
inline std::vector<uint8_t> truncated(const std::vector<uint8_t>& bytes, double fraction) {
  return {bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(static_cast<double>(bytes.size()) * fraction)};
}

inline std::vector<uint8_t> read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// An easy classification folder for end-to-end runs: `per_class` PNGs of side x side per class, class
/// k's pictures bright in a different region (plus noise), so a small model learns it in a few epochs.
inline void write_easy_folder(const std::filesystem::path& root, int classes, int per_class, int64_t side,
                              int channels = 1) {
  for (int k = 0; k < classes; ++k)
    for (int i = 0; i < per_class; ++i) {
      Pixels p = test_pattern(side, side, channels, static_cast<uint32_t>(k * 1000 + i), 60.0);
      for (int64_t y = 0; y < side; ++y)
        for (int64_t x = 0; x < side; ++x) {
          const int quadrant = (y >= side / 2 ? 2 : 0) + (x >= side / 2 ? 1 : 0);
          const bool bright = quadrant == k % 4;
          for (int c = 0; c < channels; ++c) {
            uint8_t& v = p.data[static_cast<size_t>((y * side + x) * channels + c)];
            v = static_cast<uint8_t>(bright ? 160 + v / 4 : v / 4);
          }
        }
      char name[32];
      std::snprintf(name, sizeof name, "%03d.png", i);
      write_png(root / ("class" + std::to_string(k)) / name, p);
    }
}

}  // namespace loom::test
