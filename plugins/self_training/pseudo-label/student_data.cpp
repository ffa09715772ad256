#include "student_data.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace loom::pseudo_label {

int64_t labeled_entries(int64_t labeled, int64_t pseudo_entries, double share) {
  if (!(share >= 0.0 && share < 1.0))
    throw std::invalid_argument("pseudo-label: labeled_share must be in [0, 1), got " + std::to_string(share));
  if (share == 0.0 || pseudo_entries == 0) return labeled;
  const auto wanted = static_cast<int64_t>(std::llround(share * static_cast<double>(pseudo_entries) / (1.0 - share)));
  return std::max(labeled, wanted);
}

at::Tensor oversample(const at::Tensor& indices, int64_t count, at::Generator& generator) {
  const int64_t n = indices.size(0);
  if (n == 0 || count < n)
    throw std::invalid_argument("pseudo-label: cannot oversample " + std::to_string(n) + " samples to " +
                                std::to_string(count) + " entries");
  at::Tensor out = indices.repeat({count / n});
  if (const int64_t extra = count % n; extra > 0) {
    const at::Tensor pick = at::randperm(n, generator, at::TensorOptions().dtype(at::kLong)).narrow(0, 0, extra);
    out = at::cat({out, indices.index_select(0, std::get<0>(pick.sort()))});
  }
  return out;
}

StudentData build_student_data(const at::Tensor& labeled_indices, const at::Tensor& labeled_labels,
                               const Selection& selection, const at::Tensor& probabilities,
                               const StudentDataOptions& options, at::Generator& generator) {
  if (labeled_labels.size(0) != labeled_indices.size(0))
    throw std::invalid_argument("pseudo-label: " + std::to_string(labeled_labels.size(0)) + " labels for " +
                                std::to_string(labeled_indices.size(0)) + " labeled samples");
  StudentData out;
  const at::Tensor pseudo_indices = selection.indices.repeat_interleave(selection.copies);
  const at::Tensor pseudo_rows = selection.positions.repeat_interleave(selection.copies);
  out.pseudo_entries = pseudo_indices.size(0);
  out.labeled_entries = labeled_entries(labeled_indices.size(0), out.pseudo_entries, options.labeled_share);

  // Positions into the labeled split, so indices and labels are repeated alike.
  const at::Tensor rows = oversample(at::arange(labeled_indices.size(0), at::kLong), out.labeled_entries, generator);
  const at::Tensor labels = labeled_labels.to(at::kLong).index_select(0, rows);
  out.view.indices = at::cat({labeled_indices.index_select(0, rows), pseudo_indices});
  if (options.soft) {
    const int64_t classes = probabilities.size(1);
    const at::Tensor pseudo = sharpen(probabilities.index_select(0, pseudo_rows), options.temperature);
    out.view.targets = at::cat({at::one_hot(labels, classes).to(at::kFloat), pseudo});
  } else {
    out.view.targets = at::cat({labels, selection.labels.repeat_interleave(selection.copies)});
  }
  if (options.pseudo_weight != 1.0)
    out.view.weights = at::cat({at::ones({out.labeled_entries}, at::kFloat),
                                at::full({out.pseudo_entries}, options.pseudo_weight, at::kFloat)});
  out.view.augment = options.augment;
  return out;
}

}  // namespace loom::pseudo_label
