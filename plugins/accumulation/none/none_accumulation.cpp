#include "none_accumulation.h"

namespace loom::builtin {

FeatureInfo NoAccumulation::info() {
  return {.name = "none",
          .version = "1.0.0",
          .summary = "no accumulation: one optimizer step per micro-batch",
          .params = {}};
}

EpochPlan NoAccumulation::plan(const PlanRequest& request) {
  EpochPlan plan;
  const auto count = static_cast<int64_t>(request.micro_batch_sizes.size());
  plan.groups.reserve(request.micro_batch_sizes.size());
  for (int64_t i = 0; i < count; ++i)
    plan.groups.push_back({.first = i, .count = 1, .loss_weights = {1.0}, .step = true});
  return plan;
}

}  // namespace loom::builtin
