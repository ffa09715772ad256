// Where a stage stands: what a checkpoint records so a resumed run continues at the same micro-batch,
// with the same running sums (saved per rank as "epoch_sums"), and reports the interrupted epoch as a whole.
#pragma once

#include "state/checkpoint.h"

#include <cstdint>
#include <string>

namespace loom::host {

struct TrainPosition {
  std::string stage;
  int64_t round = 0;
  int64_t epoch = 0;                 ///< epoch in progress (or the next one when next_micro == 0)
  int64_t next_group = 0;            ///< first group of `epoch` not yet applied
  int64_t next_micro = 0;            ///< first micro-batch of `epoch` not yet consumed
  int64_t optimizer_steps = 0;       ///< steps applied in this stage (skipped steps excluded)
  int64_t steps_at_epoch_start = 0;  ///< so a resumed epoch reports all its steps
  bool stage_done = false;
  std::string stopped;               ///< why a callback ended the stage early ("" when it did not)
  // Running sums of the epoch in progress, so a resumed epoch reports the same metrics.
  double loss_sum = 0.0;
  double correct = 0.0;
  int64_t samples = 0;
  double train_seconds = 0.0;
  // Where the accumulation group in progress began, so the first optimizer step after a resume inside a
  // group reports the mean loss of the whole group.
  double group_start_loss = 0.0;
  int64_t group_start_samples = 0;

  /// The "position" entry, version 2: everything but the epoch's running sums (per rank: "epoch_sums").
  Fields to_fields() const {
    Fields f;
    f.strings = {{"stage", stage}, {"stopped", stopped}};
    f.ints = {{"round", round},         {"epoch", epoch},
              {"next_group", next_group}, {"next_micro", next_micro},
              {"optimizer_steps", optimizer_steps}, {"steps_at_epoch_start", steps_at_epoch_start},
              {"stage_done", stage_done ? 1 : 0}};
    f.reals = {{"train_seconds", train_seconds}};
    return f;
  }
  /// Reads version 2, and version 1 (format 2), which carried rank 0's running sums too.
  static TrainPosition from(const Fields& f) {
    TrainPosition p;
    p.stage = f.str("stage");
    p.stopped = f.str("stopped");
    p.round = f.integer("round");
    p.epoch = f.integer("epoch");
    p.next_group = f.integer("next_group");
    p.next_micro = f.integer("next_micro");
    p.optimizer_steps = f.integer("optimizer_steps");
    p.steps_at_epoch_start = f.integer("steps_at_epoch_start");
    p.stage_done = f.integer("stage_done") != 0;
    p.train_seconds = f.real("train_seconds");
    if (f.ints.count("samples")) {
      p.samples = f.integer("samples");
      p.loss_sum = f.real("loss_sum");
      p.correct = f.real("correct");
      p.group_start_loss = f.real("group_start_loss");
      p.group_start_samples = f.integer("group_start_samples");
    }
    return p;
  }
};

}  // namespace loom::host
