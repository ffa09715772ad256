// The neutral accumulation: every micro-batch is its own optimizer step.
#pragma once

#include <loom/plugin.h>

namespace loom::builtin {

class NoAccumulation final : public Accumulation {
 public:
  static FeatureInfo info();
  EpochPlan plan(const PlanRequest& request) override;
};

}  // namespace loom::builtin
