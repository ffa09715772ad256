// Reader for gzipped IDX files (the MNIST family's format) holding unsigned bytes.
//
// Free of LibTorch on purpose: the unit tests compile idx.cpp on its own.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace loom::idx {

/// One IDX array: its dimensions and its elements in row-major order (size == product of dims).
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

/// IDX magic numbers of the two unsigned-byte arrays MNIST-style datasets ship.
inline constexpr uint32_t kImagesMagic = 0x00000803;  // rank 3: count, rows, cols
inline constexpr uint32_t kLabelsMagic = 0x00000801;  // rank 1: count

/// Reads a gzipped IDX file of unsigned bytes with the given magic number. Throws std::runtime_error,
/// naming the file, when it cannot be opened or decompressed, its magic or element type is not the
/// expected one, a dimension is zero, or the payload is shorter (truncated) or longer than the dims say.
IdxArray read_idx_gz(const std::filesystem::path& file, uint32_t expected_magic);

/// Reads an image file (rank 3) and its label file (rank 1) and checks that their counts agree.
struct LabeledImages {
  IdxArray images;
  IdxArray labels;
};
LabeledImages read_labeled_images_gz(const std::filesystem::path& images, const std::filesystem::path& labels);

}  // namespace loom::idx
