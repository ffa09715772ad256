// Pseudo-label selection: which samples of the unlabeled pool a teacher's predictions label, and how
// often each enters the student's data. LibTorch only (no host, no SDK services), so the tests call it
// directly.
//
// The pitfalls it exists to avoid: a confidence threshold alone drifts towards the easy (often majority)
// classes and can starve whole classes — hence top-K per class and balancing; and ties must break the
// same way every time, so a resumed run reselects exactly what the interrupted one did.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace loom::pseudo_label {

enum class Rule {
  Threshold,     ///< keep every sample whose confidence is >= threshold (Lee 2013)
  TopKPerClass,  ///< keep the k most confident samples of each predicted class (Yalniz et al. 2019)
  /// keep the `percentile` % most confident samples of each predicted class (or of the whole pool); the
  /// plugin raises the percentile round by round (Curriculum Labeling, Cascante-Bonilla et al. 2021)
  Curriculum,
};

enum class Balance {
  None,
  Cap,        ///< every class keeps at most as many samples as the smallest non-empty class selected
  Duplicate,  ///< every non-empty class is repeated (most confident first) up to the largest class's count
};

struct SelectionOptions {
  Rule rule = Rule::TopKPerClass;
  double threshold = 0.95;    ///< Rule::Threshold; compared with the float confidence as a double
  int64_t k = 500;            ///< Rule::TopKPerClass
  /// Rule::Curriculum: the share (0, 100] kept, as ceil(percentile / 100 * candidates) of each class (so a
  /// non-empty class keeps at least one), or of the whole pool when per_class is false.
  double percentile = 100.0;
  bool per_class = true;      ///< Rule::Curriculum
  /// At most floor(max_fraction * pool size) distinct samples, the most confident first; applied after
  /// the rule and before balancing. 1 = no cap.
  double max_fraction = 1.0;
  Balance balance = Balance::None;
};

/// The selected samples, ascending by dataset index. Confidence is the teacher's highest probability;
/// a sample's pseudo label is its argmax (the lowest class index among equal maxima). Every ordering
/// by confidence breaks ties by dataset index, ascending.
struct Selection {
  at::Tensor indices;     ///< int64 [m]: dataset indices, ascending, distinct
  at::Tensor positions;   ///< int64 [m]: the rows of the prediction tensor they came from
  at::Tensor labels;      ///< int64 [m]: pseudo labels
  at::Tensor confidence;  ///< float32 [m]
  at::Tensor copies;      ///< int64 [m], >= 1: how many times each enters the student's data (Duplicate)
  std::vector<int64_t> candidates_per_class;  ///< pool samples predicted as each class
  std::vector<int64_t> selected_per_class;    ///< distinct selected samples per class
  std::vector<int64_t> short_classes;         ///< TopKPerClass: classes with fewer than k candidates

  int64_t size() const { return indices.size(0); }
  /// Sum of copies: the pseudo-labeled entries of the student's data.
  int64_t entries() const;
};

/// Selects from a pool: `indices` int64 [n] (distinct dataset indices) and `probabilities` float [n, C]
/// (the teacher's predictions for them, row by row). Throws std::invalid_argument for mismatched shapes,
/// out-of-range options or non-finite probabilities (a diverged teacher).
Selection select(const at::Tensor& indices, const at::Tensor& probabilities, const SelectionOptions& options);

/// Soft targets sharpened by a temperature: softmax(log p / T) row by row, which equals softmax(z / T)
/// for the logits z that produced p = softmax(z). T < 1 sharpens, T = 1 returns p, T > 1 flattens.
at::Tensor sharpen(const at::Tensor& probabilities, double temperature);

/// Throws std::invalid_argument naming two splits that share an index (and one such index): unlabeled
/// samples must never be validation or test samples, or pseudo labels leak the evaluation data.
void require_disjoint(const std::vector<std::pair<std::string, at::Tensor>>& splits);

const char* to_string(Rule rule);
const char* to_string(Balance balance);

}  // namespace loom::pseudo_label
