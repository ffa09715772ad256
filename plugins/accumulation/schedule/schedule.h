// `schedule`: micro-batches per optimizer step change over training, keyed by epoch (like Lightning's
// GradientAccumulationScheduler) or by optimizer step.
#pragma once

#include "../common/stream_plan.h"

#include <loom/plugin.h>

namespace loom::builtin {

class ScheduledAccumulation final : public Accumulation {
 public:
  static FeatureInfo info();
  explicit ScheduledAccumulation(const CreateContext& ctx);

  EpochPlan plan(const PlanRequest& request) override;
  BatchNormPolicy batchnorm_policy() const override { return bn_; }

 private:
  IntMap by_epoch_, at_step_;
  accumulation::PartialLast partial_;
  BatchNormPolicy bn_;
};

}  // namespace loom::builtin
