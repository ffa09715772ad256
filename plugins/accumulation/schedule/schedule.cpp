#include "schedule.h"

#include <stdexcept>

namespace loom::builtin {

namespace {

/// The value of the greatest key ≤ at; 1 (no accumulation) before the first key.
int64_t lookup(const IntMap& map, int64_t at) {
  auto it = map.upper_bound(at);
  return it == map.begin() ? 1 : std::prev(it)->second;
}

}  // namespace

FeatureInfo ScheduledAccumulation::info() {
  return {.name = "schedule",
          .version = "1.0.0",
          .summary = "micro-batches per step that change by epoch or by optimizer step (exact weights)",
          .params = {ParamSpec::int_map("by_epoch", {})
                         .range(1, 65536)
                         .doc("{ epoch = steps }: from that 0-based epoch on, e.g. { 0 = 1, 4 = 2, 8 = 4 }"),
                     ParamSpec::int_map("at_step", {})
                         .range(1, 65536)
                         .doc("{ optimizer_step = steps }: from that step of the stage on, e.g. { 0 = 1, 1000 = 4 }"),
                     accumulation::partial_last_param(), accumulation::batchnorm_param()}};
}

ScheduledAccumulation::ScheduledAccumulation(const CreateContext& ctx)
    : by_epoch_(ctx.params.get<IntMap>("by_epoch")),
      at_step_(ctx.params.get<IntMap>("at_step")),
      partial_(accumulation::parse_partial_last(ctx.params.str("partial_last"))),
      bn_(accumulation::parse_batchnorm(ctx.params.str("bn"))) {
  // Neither set: one micro-batch per step throughout (the value before any key).
  if (!by_epoch_.empty() && !at_step_.empty())
    throw std::invalid_argument("set by_epoch or at_step, not both (which one decides a group's size would be ambiguous)");
}

EpochPlan ScheduledAccumulation::plan(const PlanRequest& request) {
  return accumulation::plan_stream(request, partial_, [this](int64_t epoch, int64_t step) {
    return by_epoch_.empty() ? lookup(at_step_, step) : lookup(by_epoch_, epoch);
  });
}

}  // namespace loom::builtin
