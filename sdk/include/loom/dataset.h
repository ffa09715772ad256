// A dataset produces deterministic, preprocessed samples by index, plus labels and splits.
//
// `load` must return the same bytes for the same index every time (decode, resize, normalise — everything
// a cache may keep): that is the contract that makes caching correct. Everything random belongs to the
// augmentation kind (<loom/augmentation.h>), which the host applies after any cache, per batch. (Before
// SDK 0.4 a dataset had its own `augment`; its crop/flip moved to the `random-crop` and `flip` ops.)
#pragma once

#include <loom/kinds.h>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom {

enum class Split { Labeled, Unlabeled, Val, Test };

inline constexpr const char* to_string(Split s) {
  switch (s) {
    case Split::Labeled: return "labeled";
    case Split::Unlabeled: return "unlabeled";
    case Split::Val: return "val";
    case Split::Test: return "test";
  }
  return "?";
}

/// What one preprocessed sample looks like.
struct SampleSpec {
  std::vector<int64_t> shape;            ///< per-sample shape, e.g. {1, 28, 28}
  c10::ScalarType dtype = c10::kFloat;   ///< dtype `load` returns
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  ///< optional; size num_classes when given
  /// Optional: declares that load() returns `from_pixels(p, spec)` of uint8 pixels p, i.e. per channel c
  /// (dim 0 of a sample) `p.to(dtype) * pixel_scale[c] + pixel_shift[c]`. A cache may then store the
  /// uint8 pixels (4x smaller than float32) and convert each batch back, bit-identically, because both
  /// sides run the same from_pixels(). Empty: load() is not an affine function of uint8 pixels.
  std::vector<double> pixel_scale, pixel_shift;
};

/// The one conversion from uint8 pixels [B, C, ...] to what load() returns, for datasets that declare
/// pixel_scale/pixel_shift (and for caches that store their uint8 pixels).
inline at::Tensor from_pixels(const at::Tensor& pixels, const SampleSpec& spec) {
  at::Tensor out = pixels.to(spec.dtype);
  if (spec.pixel_scale.empty()) return out;
  if (pixels.dim() < 2 || static_cast<int64_t>(spec.pixel_scale.size()) != pixels.size(1) ||
      spec.pixel_shift.size() != spec.pixel_scale.size())
    throw std::invalid_argument("loom::from_pixels: pixel_scale/pixel_shift must have one entry per channel");
  for (int64_t c = 0; c < pixels.size(1); ++c) {
    at::Tensor channel = out.select(1, c);
    channel.mul_(spec.pixel_scale[static_cast<size_t>(c)]).add_(spec.pixel_shift[static_cast<size_t>(c)]);
  }
  return out;
}

/// Storage for the four splits, for dataset plugins: `return splits_[split];` implements indices().
struct SplitIndices {
  at::Tensor labeled, unlabeled, val, test;  ///< int64, 1-D, sorted, disjoint
  const at::Tensor& operator[](Split s) const {
    switch (s) {
      case Split::Labeled: return labeled;
      case Split::Unlabeled: return unlabeled;
      case Split::Val: return val;
      case Split::Test: return test;
    }
    throw std::invalid_argument("loom::SplitIndices: unknown split");
  }
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual SampleSpec spec() const = 0;
  /// Number of samples in the index space shared by all splits.
  virtual int64_t size() const = 0;
  /// Indices (int64, 1-D) of a split. Splits are disjoint; Unlabeled may be empty.
  virtual at::Tensor indices(Split split) const = 0;
  /// True labels (int64, [size()]) for every index, including the hidden labels of the unlabeled split
  /// when the dataset knows them (-1 where it does not). The host only trains on labels of the split it
  /// was asked to train on; hidden labels serve metrics such as pseudo-label accuracy.
  virtual at::Tensor labels() const = 0;
  /// Deterministic preprocessed samples for `indices` (int64, 1-D): [B, shape...] of spec().dtype on the
  /// CPU. Must be thread-safe: the host's loader calls it from a background thread.
  virtual at::Tensor load(const at::Tensor& indices) const = 0;
  /// Identifies everything that determines load()'s bytes (plugin name and version, the params that
  /// change preprocessing, the source files). A cache keys on it.
  virtual std::string fingerprint() const = 0;
  /// Counts the host reports once per run in metrics.jsonl and summary.json under "dataset/<name>", e.g.
  /// {"skipped_files": 3}. Default: none.
  virtual std::map<std::string, int64_t> counters() const { return {}; }
};

/// The dataset kind: required; before the cache that wraps it and everything that reads its spec.
template <>
struct KindTraits<Dataset> : KindTraitsBase {
  static constexpr Kind kind = Kind::Dataset;
  static constexpr int order = 20;
};

}  // namespace loom
