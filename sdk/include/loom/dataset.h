// A dataset produces deterministic, preprocessed samples by index, plus labels and splits.
//
// The split between `load` and `augment` is the contract that makes caching correct: `load` must return
// the same bytes for the same index every time (decode, resize, normalise — everything a cache may keep),
// and everything random belongs in `augment`, which the host applies after any cache, per batch, with a
// generator it seeds from the run seed.
#pragma once

#include <loom/kinds.h>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
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
};

class Dataset {
 public:
  static constexpr Kind kKind = Kind::Dataset;
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
  /// Random augmentation of a loaded batch (training only, after any cache). Default: none.
  virtual at::Tensor augment(const at::Tensor& batch, at::Generator& generator) const {
    (void)generator;
    return batch;
  }
};

}  // namespace loom
