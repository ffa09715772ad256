#include "target_batch.h"

#include <ATen/ATen.h>

#include <stdexcept>

namespace loom::builtin {

FeatureInfo TargetBatchAccumulation::info() {
  return {.name = "target-batch",
          .version = "1.0.0",
          .summary = "fixed effective batch per optimizer step; micro-batch given or probed to fit the device",
          .params = {ParamSpec::integer("effective_batch_size", 256).range(1, 1 << 24).doc("samples per optimizer step"),
                     ParamSpec::integer("micro_batch", 0)
                         .range(0, 1 << 24)
                         .doc("samples per micro-batch (a divisor of effective_batch_size); 0 = probe the largest that fits"),
                     ParamSpec::integer("memory_budget_mb", 2048)
                         .range(1, 1 << 30)
                         .doc("CPU probing: the most tensor memory one micro-batch's forward+backward may use"),
                     accumulation::partial_last_param(), accumulation::batchnorm_param()}};
}

TargetBatchAccumulation::TargetBatchAccumulation(const CreateContext& ctx)
    : effective_(ctx.params.integer("effective_batch_size")),
      requested_micro_(ctx.params.integer("micro_batch")),
      budget_bytes_(ctx.params.integer("memory_budget_mb") * 1024 * 1024),
      partial_(accumulation::parse_partial_last(ctx.params.str("partial_last"))),
      bn_(accumulation::parse_batchnorm(ctx.params.str("bn"))),
      device_(ctx.run.device()),
      log_(ctx.run.logger()) {
  if (requested_micro_ > 0 && effective_ % requested_micro_ != 0)
    throw std::invalid_argument("micro_batch = " + std::to_string(requested_micro_) + " does not divide effective_batch_size = " +
                                std::to_string(effective_) + "; pick a divisor, or 0 to probe one");
}

int64_t TargetBatchAccumulation::micro_batch_size(int64_t configured, const MicroBatchProbe& probe) {
  (void)configured;  // the effective batch decides; [loader] batch_size does not apply
  if (chosen_micro_ > 0) return chosen_micro_;  // restored from a checkpoint
  if (requested_micro_ > 0) return chosen_micro_ = requested_micro_;
  // Largest divisor of the effective batch whose forward + backward fits: on CUDA, one that does not run
  // out of memory; on the CPU, one whose measured peak tensor memory stays within the budget.
  std::vector<int64_t> divisors;
  for (int64_t d = effective_; d >= 1; --d)
    if (effective_ % d == 0) divisors.push_back(d);
  for (int64_t d : divisors) {
    const std::optional<int64_t> peak = probe(d);
    const bool fits = peak && (device_.is_cuda() || *peak <= budget_bytes_);
    if (fits) {
      log_.info("target-batch: micro-batch " + std::to_string(d) + " × " + std::to_string(effective_ / d) +
                " steps = effective batch " + std::to_string(effective_) +
                (device_.is_cpu() ? " (probe peak " + std::to_string(*peak / (1024 * 1024)) + " MiB of " +
                                        std::to_string(budget_bytes_ / (1024 * 1024)) + " MiB budget)"
                                  : std::string()));
      return chosen_micro_ = d;
    }
  }
  throw std::runtime_error("no micro-batch fits: even 1 sample exceeds " +
                           (device_.is_cuda() ? std::string("the device memory")
                                              : "memory_budget_mb = " + std::to_string(budget_bytes_ / (1024 * 1024))));
}

EpochPlan TargetBatchAccumulation::plan(const PlanRequest& request) {
  const int64_t micro = chosen_micro_ > 0 ? chosen_micro_ : (requested_micro_ > 0 ? requested_micro_ : effective_);
  const int64_t steps = effective_ / micro;
  return accumulation::plan_stream(request, partial_, [steps](int64_t, int64_t) { return steps; });
}

StateDict TargetBatchAccumulation::state_dict() const {
  return {{"micro_batch", at::scalar_tensor(chosen_micro_, at::kLong)}};
}

void TargetBatchAccumulation::load_state_dict(const StateDict& state) {
  if (auto it = state.find("micro_batch"); it != state.end()) chosen_micro_ = it->second.item<int64_t>();
}

}  // namespace loom::builtin
