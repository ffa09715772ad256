// [lr_schedule]: the learning rate as a pure function of the optimizer-step count.
#include "loop/optim.h"

#include <algorithm>
#include <cmath>

namespace loom::host {

LrSchedule::LrSchedule(const Params& s, double base_lr, int64_t total_steps)
    : name_(s.str("name")),
      base_(base_lr),
      min_lr_(s.real("min_lr")),
      pct_start_(s.real("pct_start")),
      div_(s.real("div_factor")),
      final_div_(s.real("final_div_factor")),
      warmup_(s.integer("warmup_steps")),
      total_(std::max<int64_t>(total_steps, 1)) {}

double LrSchedule::lr(int64_t step) const {
  constexpr double pi = 3.14159265358979323846;
  const double t = static_cast<double>(std::clamp<int64_t>(step, 0, total_));
  if (name_ == "one-cycle") {
    // PyTorch's OneCycleLR (cosine annealing, two phases).
    const double initial = base_ / div_, final_lr = initial / final_div_;
    const double up = std::max(1.0, pct_start_ * static_cast<double>(total_) - 1.0);
    const double down = std::max(1.0, static_cast<double>(total_) - 1.0 - up);
    auto anneal = [&](double from, double to, double frac) { return to + (from - to) / 2.0 * (std::cos(pi * frac) + 1.0); };
    if (t <= up) return anneal(initial, base_, t / up);
    return anneal(base_, final_lr, std::min(1.0, (t - up) / down));
  }
  if (warmup_ > 0 && step < warmup_) return base_ * static_cast<double>(step + 1) / static_cast<double>(warmup_ + 1);
  if (name_ == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(total_ - warmup_, 1));
    const double frac = std::min(1.0, (t - static_cast<double>(warmup_)) / span);
    return min_lr_ + (base_ - min_lr_) * 0.5 * (1.0 + std::cos(pi * frac));
  }
  return base_;
}

void LrSchedule::apply(torch::optim::Optimizer& optimizer, int64_t step) const {
  const double value = lr(step);
  for (auto& group : optimizer.param_groups()) group.options().set_lr(value);
}

}  // namespace loom::host
