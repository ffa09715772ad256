// What the parts of the training loop share: the run's services (Loop) and one stage's state (StageRun).
// The parts, each in its own file:
//   stage_plan     micro-batch size, epoch plans, schedule length, BatchNorm policy
//   epoch_loop     one epoch: loader, micro-batch groups, forward/backward, optimizer step, stop checks
//   epoch_report   the epoch's record: sums over ranks, validation, callbacks' metrics and hooks, sinks
//   data_parallel  gradient all-reduce, stop agreement, sync BN, replica check
//   trainer        TrainerServices: stages, resume, checkpoints, predict/evaluate
#pragma once

#include "loop/augment_pipelines.h"
#include "loop/callbacks.h"
#include "loop/data_parallel.h"
#include "loop/evaluation.h"
#include "loop/loop_options.h"
#include "loop/metric_hub.h"
#include "loop/model_book.h"
#include "loop/optim.h"
#include "loop/position.h"
#include "loop/progress.h"
#include "plugins/run_context.h"
#include "loop/stage_plan.h"

#include <loom/callback.h>
#include <loom/precision.h>
#include <loom/self_training.h>

#include <functional>

namespace loom::host {

struct Loop {
  const LoopOptions& options;
  HostRunContext& context;
  const Dataset& dataset;
  const at::Tensor& labels;
  const Slot<Precision>& precision;
  DataParallel& dp;
  CallbackSet& callbacks;
  StageControl& control;
  MetricHub& metrics;
  Progress& progress;
  const ModelBook& models;
  const Evaluator& evaluator;
};

struct StageRun {
  Model& model;
  torch::optim::Optimizer& optimizer;
  const View& view;
  StageInfo info;
  StagePlan plan;
  LrSchedule schedule;
  TrainPosition pos;
  bool dropout = true;
  const AugmentPipeline* pipeline = nullptr;  ///< the stage's augmentation (nullptr: none)
};

/// Running sums of the epoch in progress, on the training device.
struct EpochSums {
  at::Tensor loss_sum, correct;
};

/// Writes the checkpoint at a position (every rank calls it; rank 0 writes).
using Checkpointer = std::function<void(const TrainPosition&)>;

enum class EpochEnd { Completed, StageStopped };

/// Runs the rest of epoch `run.pos.epoch` from `run.pos.next_group`. On a stop signal it writes a
/// checkpoint and throws Interrupted; on a callback's stop it returns StageStopped at the group boundary.
EpochEnd run_epoch(Loop& loop, StageRun& run, EpochSums& sums, const Checkpointer& checkpoint);

/// The epoch's record after run_epoch: sums over the ranks, validation (on a callback's substitute model),
/// callbacks' metrics and on_validation_end, then every sink. `seconds` is the epoch's training time.
void report_epoch(Loop& loop, StageRun& run, EpochSums& sums, double seconds);

}  // namespace loom::host
