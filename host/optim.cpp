#include "optim.h"

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cmath>

namespace loom::host {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Params& p, std::vector<at::Tensor> parameters) {
  if (p.str("name") == "sgd") {
    auto options = torch::optim::SGDOptions(p.real("lr"))
                       .momentum(p.real("momentum"))
                       .nesterov(p.boolean("nesterov"))
                       .weight_decay(p.real("weight_decay"));
    if (p.boolean("nesterov") && p.real("momentum") <= 0.0)
      throw std::invalid_argument("[optimizer] nesterov = true needs momentum > 0");
    return std::make_unique<torch::optim::SGD>(std::move(parameters), options);
  }
  auto options = torch::optim::AdamWOptions(p.real("lr"))
                     .betas({p.real("beta1"), p.real("beta2")})
                     .eps(p.real("eps"))
                     .weight_decay(p.real("weight_decay"));
  return std::make_unique<torch::optim::AdamW>(std::move(parameters), options);
}

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
