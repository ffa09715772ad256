// `target-batch`: a fixed effective batch (samples per optimizer step); the micro-batch is given or
// probed (the largest that fits), and the number of micro-batches per step follows. Moving to a smaller
// device changes the micro-batch, not the optimisation.
#pragma once

#include "../common/stream_plan.h"

#include <loom/plugin.h>

namespace loom::builtin {

class TargetBatchAccumulation final : public Accumulation {
 public:
  static FeatureInfo info();
  explicit TargetBatchAccumulation(const CreateContext& ctx);

  int64_t micro_batch_size(int64_t configured, const MicroBatchProbe& probe) override;
  EpochPlan plan(const PlanRequest& request) override;
  BatchNormPolicy batchnorm_policy() const override { return bn_; }
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  int64_t effective_, requested_micro_, budget_bytes_;
  int64_t chosen_micro_ = 0;  // kept in checkpoints: a resumed run must not re-probe to another size
  accumulation::PartialLast partial_;
  BatchNormPolicy bn_;
  c10::Device device_;
  Logger& log_;
};

}  // namespace loom::builtin
