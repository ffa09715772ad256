// Label splits shared by the dataset plugins: a training pool is divided into validation, labeled and
// unlabeled samples the same way by every dataset, so `labeled_per_class`, `labeled_fraction` and
// `val_size` mean the same thing whichever dataset a config picks.
#pragma once

#include <loom/dataset.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::dataset_common {

struct PoolSplitOptions {
  /// Samples of the pool held out for validation: the first val_size of a seeded random order (not
  /// stratified, so the validation split mirrors the class balance of the pool).
  int64_t val_size = 0;
  /// How the user asked for val_size, for error messages, e.g. "val_size=5000".
  std::string val_param;
  /// > 0: a stratified labeled subset of exactly this many samples per class; 0: use labeled_fraction.
  int64_t labeled_per_class = 0;
  /// Fraction of the non-validation samples that keep their labels (when labeled_per_class is 0).
  double labeled_fraction = 1.0;
};

inline at::Tensor sorted_indices(const at::Tensor& indices) { return std::get<0>(indices.sort()); }

/// Fills splits.val, splits.labeled and splits.unlabeled (sorted, disjoint, together exactly `pool`) from
/// `pool` (int64 indices into `labels`, int64 [N]), drawing from `generator` (seed it from the dataset's
/// split_seed, never from the run seed). `who` prefixes error messages ("fashion-mnist").
/// Throws std::runtime_error when the validation split leaves nothing to train on, or a class has fewer
/// than labeled_per_class samples outside the validation split.
inline void split_pool(SplitIndices& splits, const at::Tensor& pool, const at::Tensor& labels,
                       const std::vector<std::string>& class_names, const PoolSplitOptions& options,
                       at::Generator& generator, const std::string& who) {
  const int64_t n = pool.size(0);
  if (options.val_size >= n)
    throw std::runtime_error(who + ": " + options.val_param + " holds out " + std::to_string(options.val_size) +
                             " validation samples, which leaves no training samples (the training pool has " +
                             std::to_string(n) + "); lower it");
  const at::Tensor order = pool.index_select(0, at::randperm(n, generator, at::kLong));
  splits.val = sorted_indices(order.narrow(0, 0, options.val_size));
  const at::Tensor rest = order.narrow(0, options.val_size, n - options.val_size);

  at::Tensor labeled = at::zeros({rest.size(0)}, at::kBool);
  if (options.labeled_per_class > 0) {
    // Stratified: the first labeled_per_class samples of each class in the seeded order.
    const at::Tensor rest_labels = labels.index_select(0, rest);
    for (int64_t c = 0; c < static_cast<int64_t>(class_names.size()); ++c) {
      const at::Tensor positions = (rest_labels == c).nonzero().squeeze(1);
      if (positions.size(0) < options.labeled_per_class)
        throw std::runtime_error(who + ": labeled_per_class=" + std::to_string(options.labeled_per_class) +
                                 " but class " + class_names[static_cast<size_t>(c)] + " has only " +
                                 std::to_string(positions.size(0)) + " training samples outside the " +
                                 std::to_string(options.val_size) +
                                 " validation samples; lower labeled_per_class or the validation split");
      labeled.index_fill_(0, positions.narrow(0, 0, options.labeled_per_class), true);
    }
  } else {
    const auto count = static_cast<int64_t>(std::llround(options.labeled_fraction * static_cast<double>(rest.size(0))));
    labeled.narrow(0, 0, count).fill_(true);
  }
  splits.labeled = sorted_indices(rest.masked_select(labeled));
  splits.unlabeled = sorted_indices(rest.masked_select(labeled.logical_not()));
}

}  // namespace loom::dataset_common
