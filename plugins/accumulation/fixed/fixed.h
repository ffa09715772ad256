// `fixed`: groups of N micro-batches per optimizer step, the seed note's gradient accumulation done right.
#pragma once

#include "../common/stream_plan.h"

#include <loom/plugin.h>

namespace loom::builtin {

class FixedAccumulation final : public Accumulation {
 public:
  static FeatureInfo info();
  explicit FixedAccumulation(const CreateContext& ctx);

  EpochPlan plan(const PlanRequest& request) override;
  BatchNormPolicy batchnorm_policy() const override { return bn_; }

 private:
  int64_t steps_;
  accumulation::PartialLast partial_;
  BatchNormPolicy bn_;
};

}  // namespace loom::builtin
