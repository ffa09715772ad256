#include "fixed.h"

namespace loom::builtin {

FeatureInfo FixedAccumulation::info() {
  return {.name = "fixed",
          .version = "1.0.0",
          .summary = "N micro-batches per optimizer step, each weighted by its samples (exact for a short last group)",
          .params = {ParamSpec::integer("steps", 4).range(1, 65536).doc("micro-batches per optimizer step"),
                     accumulation::partial_last_param(), accumulation::batchnorm_param()}};
}

FixedAccumulation::FixedAccumulation(const CreateContext& ctx)
    : steps_(ctx.params.integer("steps")),
      partial_(accumulation::parse_partial_last(ctx.params.str("partial_last"))),
      bn_(accumulation::parse_batchnorm(ctx.params.str("bn"))) {}

EpochPlan FixedAccumulation::plan(const PlanRequest& request) {
  return accumulation::plan_stream(request, partial_, [this](int64_t, int64_t) { return steps_; });
}

}  // namespace loom::builtin
