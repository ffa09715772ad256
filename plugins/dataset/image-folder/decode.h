// JPEG (libjpeg-turbo) and PNG (libpng) files to 8-bit pixels, with errors that name the file.
//
// Free of LibTorch on purpose: decoding is plain C libraries and byte buffers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace loom::image {

enum class Format { Jpeg, Png };

/// A file that cannot be read or decoded. what() names the file and says what is wrong with it.
class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What a file's header says, without decoding its pixels.
struct ImageHeader {
  Format format = Format::Png;
  int64_t width = 0, height = 0;
  int channels = 0;  ///< what decode() returns: 1 (grey) or 3 (RGB)
};

/// Decoded pixels, interleaved (height x width x channels), channels 1 (grey) or 3 (RGB).
struct Image {
  int64_t width = 0, height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

/// Reads only the header (JPEG markers up to the first scan; PNG chunks up to the first IDAT): cheap, and
/// catches files that are not images, empty or cut short before their pixel data. The format comes from
/// the file's first bytes, not its extension. Throws ImageError.
ImageHeader read_header(const std::filesystem::path& file);

/// Decodes the whole file. Grey (and grey+alpha) images give 1 channel, colour images (RGB, RGBA,
/// palette, YCbCr JPEG) 3; alpha is dropped, 16-bit PNG samples are scaled to 8 bits, interlaced PNGs
/// are de-interlaced, EXIF orientation is ignored (as PIL's Image.open and torchvision's decoders do).
/// Corrupt or truncated data is an error — including what libjpeg only warns about ("Corrupt JPEG
/// data: ...", "Premature end of JPEG file"), which would otherwise decode as grey blocks. Throws
/// ImageError.
Image decode(const std::filesystem::path& file);

}  // namespace loom::image
