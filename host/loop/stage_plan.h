// Before a stage's first epoch: the micro-batch size (the accumulation plugin may probe for it), the
// micro-batches of an epoch, every epoch's groups (validated), the LR schedule's length, and the
// BatchNorm policy when groups hold several micro-batches.
#pragma once

#include "loop/data_parallel.h"
#include "loop/model_book.h"
#include "plugins/slot.h"
#include "plugins/plugin_guard.h"

#include <loom/accumulation.h>
#include <loom/dataset.h>
#include <loom/precision.h>
#include <loom/self_training.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace loom::host {

struct StagePlan {
  int64_t micro_batch = 0;            ///< samples per micro-batch on one rank
  std::vector<int64_t> sizes;         ///< global micro-batch sizes of an epoch (world × micro_batch each)
  std::vector<EpochPlan> epochs;
  int64_t total_steps = 0;            ///< optimizer steps the plans take (the LR schedule's length)
  std::vector<std::shared_ptr<torch::nn::Module>> batchnorms;
  bool freeze_batchnorm = false;
};

struct StagePlanner {
  const Slot<Accumulation>& accumulation;
  const Dataset& dataset;
  const at::Tensor& labels;
  const Slot<Precision>& precision;
  DataParallel& dp;
  const ModelBook& models;
  c10::Device device;
  Logger& logger;

  /// `warned` carries the BatchNorm warning across stages (said once per run).
  StagePlan plan(Model& model, const View& view, int64_t configured_batch, int64_t epochs, bool& warned) const;

 private:
  std::optional<int64_t> probe(Model& model, const View& view, int64_t size) const;
};

}  // namespace loom::host
