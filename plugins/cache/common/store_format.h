// How a cache keeps samples: the `store_dtype` param shared by the memory and npy caches, and the one
// conversion each way between what Dataset::load() returns and what the cache stores.
//
//   auto     the dataset's dtype: lossless, nothing converted
//   float32  / float16: cast on store, cast back on load; lossy when narrower than the dataset's dtype
//   uint8    the dataset's pixels, for datasets that declare SampleSpec::pixel_scale/pixel_shift: stored
//            as round((x - shift) / scale), loaded with loom::from_pixels() — the very function the
//            dataset's own load() uses — so cached and uncached samples are bit-identical. The round
//            trip is verified for every sample while the cache is built.
#pragma once

#include <loom/dataset.h>
#include <loom/io.h>
#include <loom/log.h>
#include <loom/params.h>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::caching {

/// The `store_dtype` schema entry, identical in every cache that stores samples.
ParamSpec store_dtype_param();

/// numpy-style dtype name for messages and manifests: "float32", "uint8", "bfloat16", ...
std::string dtype_name(c10::ScalarType dtype);

/// count × prod(shape) × element size, or a clear error when it overflows 64 bits.
uint64_t stored_bytes(int64_t count, const std::vector<int64_t>& shape, c10::ScalarType dtype);

/// "219.5 MB" (decimal units, with the exact byte count left to the caller where it matters): Loom::io's.
using io::human_bytes;

/// "[1, 28, 28]"
std::string shape_text(const std::vector<int64_t>& shape);

class StoreFormat {
 public:
  /// Resolves `store_dtype` ("auto" | "float32" | "float16" | "uint8") for `spec`. Throws
  /// std::invalid_argument, naming `who` (e.g. "npy cache"), when uint8 is asked of a dataset that does
  /// not declare pixel_scale/pixel_shift.
  StoreFormat(const std::string& store_dtype, const SampleSpec& spec, std::string who);

  c10::ScalarType store() const { return store_; }
  std::string store_name() const { return dtype_name(store_); }
  const SampleSpec& spec() const { return spec_; }
  /// True when loading may return different bytes than the dataset (float16 of float32 data, ...).
  bool lossy() const { return lossy_; }

  /// Logs a warning when the store dtype is lossy (call once per cache).
  void warn_if_lossy(Logger& logger) const;

  /// Dataset samples [B, shape...] (rows first_index..first_index+B-1) in the store dtype. For uint8,
  /// throws std::runtime_error naming the first sample whose pixels do not reproduce it bit for bit.
  at::Tensor to_store(const at::Tensor& samples, int64_t first_index) const;
  /// Stored rows back to exactly what the dataset's load() returns (a new tensor).
  at::Tensor from_store(const at::Tensor& stored) const;

 private:
  at::Tensor pixels_of(const at::Tensor& samples, int64_t first_index) const;

  SampleSpec spec_;
  std::string who_;
  c10::ScalarType store_;
  bool pixels_ = false;
  /// uint8 store: from_pixels() of every pixel value per channel, [C, 256] of spec().dtype. Loading looks
  /// values up instead of computing them: one pass, and bit-identical by construction (the table holds
  /// from_pixels()'s own results, which are elementwise).
  at::Tensor lut_;
  bool lossy_ = false;
};

}  // namespace loom::caching
