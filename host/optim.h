// The built-in [optimizer] and [lr_schedule]. The schedule is a pure function of the optimizer-step
// count, so it is counted in optimizer steps (never micro-batches) and resumes from one integer.
#pragma once

#include <loom/params.h>

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace loom::host {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Params& params, std::vector<at::Tensor> parameters);

class LrSchedule {
 public:
  LrSchedule(const Params& schedule, double base_lr, int64_t total_steps);
  /// Learning rate for the optimizer step with 0-based index `step`.
  double lr(int64_t step) const;
  /// Sets every param group's lr to lr(step).
  void apply(torch::optim::Optimizer& optimizer, int64_t step) const;
  int64_t total_steps() const { return total_; }

 private:
  std::string name_;
  double base_, min_lr_, pct_start_, div_, final_div_;
  int64_t warmup_, total_;
};

}  // namespace loom::host
