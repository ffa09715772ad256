// The student's training data: the labeled split (with its true labels, oversampled to `labeled_share`
// of the entries) plus the selected pseudo-labeled samples (hard or sharpened soft targets, weighted).
// Host-independent: it builds a loom::View, which the host's loader consumes.
#pragma once

#include "selection.h"

#include <loom/self_training.h>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace loom::pseudo_label {

struct StudentDataOptions {
  bool soft = false;           ///< float [n, C] targets (labeled rows one-hot) instead of int64 labels
  double temperature = 1.0;    ///< soft: sharpen(p, temperature)
  double pseudo_weight = 1.0;  ///< per-sample loss weight of pseudo-labeled entries (labeled: 1)
  /// Fraction of the entries that come from the labeled split, by repeating labeled indices; 0: each
  /// labeled sample once (plain concatenation). Never drops a labeled sample.
  double labeled_share = 0.0;
  bool augment = true;         ///< View::augment (student noise)
};

struct StudentData {
  View view;                   ///< labeled entries first, then pseudo-labeled entries
  int64_t labeled_entries = 0;
  int64_t pseudo_entries = 0;
};

/// How many labeled entries make them `share` of the data next to `pseudo_entries` pseudo-labeled ones:
/// max(labeled, round(share * pseudo / (1 - share))); `labeled` when share is 0 or nothing was selected.
int64_t labeled_entries(int64_t labeled, int64_t pseudo_entries, double share);

/// `count` entries drawn from `indices`: every index count / n times, plus a random (by `generator`)
/// count % n of them once more, so the oversampling favours no part of the split.
at::Tensor oversample(const at::Tensor& indices, int64_t count, at::Generator& generator);

/// Builds the student's view. `labeled_indices` / `labeled_labels` (int64 [L]) are the labeled split and
/// its true labels; `probabilities` [n, C] are the teacher's predictions for the pool that `selection`
/// was made from (selection.positions index its rows).
StudentData build_student_data(const at::Tensor& labeled_indices, const at::Tensor& labeled_labels,
                               const Selection& selection, const at::Tensor& probabilities,
                               const StudentDataOptions& options, at::Generator& generator);

}  // namespace loom::pseudo_label
