// Prediction and evaluation: batched, eval mode, no augmentation; each rank evaluates its block of the
// view and the sums (and predicted rows) are combined over the ranks.
#pragma once

#include "loop/data_parallel.h"
#include "loop/model_book.h"
#include "plugins/plugin_guard.h"

#include <loom/dataset.h>
#include <loom/precision.h>
#include <loom/self_training.h>

namespace loom::host {

struct EvalSums {
  double loss = 0.0, correct = 0.0;
  int64_t samples = 0;
  at::Tensor probabilities;  ///< [n, C] float on the CPU, when asked for
};

struct Evaluator {
  const Dataset& dataset;
  const at::Tensor& labels;  ///< the dataset's labels, int64 [size]
  const Slot<Precision>& precision;
  DataParallel& dp;
  const ModelBook& models;
  c10::Device device;
  int64_t batch_size = 1024;
  int64_t prefetch = 0;

  EvalSums run(Model& model, const View& view, bool keep_probabilities) const;
  EvalResult evaluate(Model& model, const View& view) const;
  at::Tensor predict(Model& model, const View& view) const;
};

/// Throws std::invalid_argument when a view does not fit the dataset.
void check_view(const View& view, int64_t dataset_size, const char* what);

/// Correctly classified samples (argmax of soft targets for float targets), as a 0-dim tensor.
at::Tensor correct_count(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace loom::host
