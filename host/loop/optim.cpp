#include "loop/optim.h"

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_addcdiv.h>
#include <ATen/ops/_foreach_addcmul.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_lerp.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_sqrt.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/_fused_sgd.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

namespace loom::host {
namespace {

using torch::optim::AdamWOptions;
using torch::optim::AdamWParamState;
using torch::optim::SGDOptions;
using torch::optim::SGDParamState;

/// The parameters of one group that have a gradient, split by (device, dtype): a foreach or fused call
/// takes tensors of one device and dtype (torch.optim groups them the same way).
template <typename Fn>
void for_each_bucket(const std::vector<at::Tensor>& params, Fn&& fn) {
  std::map<std::pair<std::string, int>, std::vector<at::Tensor>> buckets;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    if (p.grad().is_sparse()) throw std::invalid_argument("[optimizer] does not support sparse gradients");
    buckets[{p.device().str(), static_cast<int>(p.scalar_type())}].push_back(p);
  }
  for (auto& [key, bucket] : buckets) fn(bucket);
}

std::vector<at::Tensor> grads_of(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  out.reserve(params.size());
  for (const auto& p : params) out.push_back(p.grad());
  return out;
}

/// `t` in `p`'s layout. The fused kernels walk a parameter, its gradient and its state as flat arrays, so
/// they must share one layout; autograd gives gradients their parameter's strides, but a gradient set by
/// hand, or state restored from a checkpoint of a contiguous run, may have others.
at::Tensor like_param(const at::Tensor& t, const at::Tensor& p) {
  if (t.strides() == p.strides()) return t;
  return at::empty_like(p).copy_(t);
}

std::vector<at::Scalar> scalars(const std::vector<double>& values) { return {values.begin(), values.end()}; }

// ---------------------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------------------

class AdamW final : public torch::optim::AdamW {
 public:
  AdamW(std::vector<torch::optim::OptimizerParamGroup> groups, AdamWOptions defaults, OptimizerImpl impl)
      : torch::optim::AdamW(std::move(groups), std::move(defaults)), impl_(impl) {}

  at::Tensor step(LossClosure closure) override {
    if (impl_ == OptimizerImpl::Loop) return torch::optim::AdamW::step(std::move(closure));
    at::Tensor loss;
    if (closure) {
      at::AutoGradMode enable(true);
      loss = closure();
    }
    at::NoGradGuard no_grad;
    for (auto& group : param_groups_) {
      auto& o = static_cast<AdamWOptions&>(group.options());
      if (o.amsgrad()) throw std::logic_error("Loom's AdamW does not implement amsgrad");
      for_each_bucket(group.params(), [&](const std::vector<at::Tensor>& params) { update(params, o); });
    }
    return loss;
  }

  void load(torch::serialize::InputArchive& archive) override {
    torch::optim::AdamW::load(archive);
    step_tensors_.clear();  // rebuilt from the loaded integer steps
  }

 private:
  AdamWParamState& state_for(const at::Tensor& p) {
    auto& slot = state_[p.unsafeGetTensorImpl()];
    if (!slot) {  // as torch::optim::AdamW initialises it
      auto s = std::make_unique<AdamWParamState>();
      s->step(0);
      s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
      s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
      slot = std::move(s);
    }
    return static_cast<AdamWParamState&>(*slot);
  }

  void update(const std::vector<at::Tensor>& params, const AdamWOptions& o) {
    const auto [beta1, beta2] = o.betas();
    const double lr = o.lr(), wd = o.weight_decay(), eps = o.eps();
    std::vector<at::Tensor> exp_avgs, exp_avg_sqs;
    std::vector<int64_t> steps;
    const bool fused = impl_ == OptimizerImpl::Fused;
    for (const auto& p : params) {
      auto& s = state_for(p);
      s.step(s.step() + 1);
      steps.push_back(s.step());
      if (fused) {
        s.exp_avg(like_param(s.exp_avg(), p));
        s.exp_avg_sq(like_param(s.exp_avg_sq(), p));
      }
      exp_avgs.push_back(s.exp_avg());
      exp_avg_sqs.push_back(s.exp_avg_sq());
    }
    auto grads = grads_of(params);
    if (fused) {
      for (size_t i = 0; i < params.size(); ++i) grads[i] = like_param(grads[i], params[i]);
      // torch.optim's _fused_adamw: the kernel reads each parameter's step from a float tensor on its
      // device, incremented before the call.
      std::vector<at::Tensor> step_tensors;
      for (size_t i = 0; i < params.size(); ++i) {
        auto [it, fresh] = step_tensors_.try_emplace(params[i].unsafeGetTensorImpl());
        if (fresh) {
          it->second = at::scalar_tensor(static_cast<double>(steps[i]), at::TensorOptions().dtype(at::kFloat).device(params[i].device()));
        } else {
          it->second.add_(1);
        }
        step_tensors.push_back(it->second);
      }
      at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, {}, step_tensors, lr, beta1, beta2, wd, eps,
                        /*amsgrad=*/false, /*maximize=*/false);
      return;
    }
    // torch.optim's _multi_tensor_adam with decoupled weight decay (capturable = false), call for call.
    if (wd != 0.0) at::_foreach_mul_(params, 1.0 - lr * wd);
    at::_foreach_lerp_(exp_avgs, grads, 1.0 - beta1);
    at::_foreach_mul_(exp_avg_sqs, beta2);
    at::_foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2);
    std::vector<double> step_size, bias_correction2_sqrt;
    for (const int64_t t : steps) {
      const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(t));
      const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(t));
      step_size.push_back((lr / bc1) * -1.0);
      bias_correction2_sqrt.push_back(std::pow(bc2, 0.5));
    }
    auto denom = at::_foreach_sqrt(exp_avg_sqs);
    at::_foreach_div_(denom, scalars(bias_correction2_sqrt));
    at::_foreach_add_(denom, eps);
    at::_foreach_addcdiv_(params, exp_avgs, denom, scalars(step_size));
  }

  OptimizerImpl impl_;
  /// Fused only: each parameter's step as the float tensor the kernel reads, kept in step with the
  /// integer AdamWParamState::step (which is what checkpoints hold).
  std::unordered_map<const void*, at::Tensor> step_tensors_;
};

// ---------------------------------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------------------------------

class SGD final : public torch::optim::SGD {
 public:
  SGD(std::vector<torch::optim::OptimizerParamGroup> groups, SGDOptions defaults, OptimizerImpl impl)
      : torch::optim::SGD(std::move(groups), std::move(defaults)), impl_(impl) {}

  at::Tensor step(LossClosure closure) override {
    if (impl_ == OptimizerImpl::Loop) return torch::optim::SGD::step(std::move(closure));
    at::Tensor loss;
    if (closure) {
      at::AutoGradMode enable(true);
      loss = closure();
    }
    at::NoGradGuard no_grad;
    for (auto& group : param_groups_) {
      auto& o = static_cast<SGDOptions&>(group.options());
      for_each_bucket(group.params(), [&](const std::vector<at::Tensor>& params) { update(params, o); });
    }
    return loss;
  }

 private:
  /// The momentum buffer of `p`, or an undefined tensor before its first step.
  at::Tensor buffer(const at::Tensor& p) const {
    auto it = state_.find(p.unsafeGetTensorImpl());
    return it == state_.end() ? at::Tensor() : static_cast<const SGDParamState&>(*it->second).momentum_buffer();
  }
  void set_buffer(const at::Tensor& p, at::Tensor buf) {
    auto s = std::make_unique<SGDParamState>();
    s->momentum_buffer(std::move(buf));
    state_[p.unsafeGetTensorImpl()] = std::move(s);
  }

  void update(const std::vector<at::Tensor>& params, const SGDOptions& o) {
    const double lr = o.lr(), wd = o.weight_decay(), momentum = o.momentum(), dampening = o.dampening();
    const bool nesterov = o.nesterov();
    auto grads = grads_of(params);
    std::vector<at::Tensor> bufs;
    size_t missing = 0;
    for (const auto& p : params) {
      bufs.push_back(buffer(p));
      missing += bufs.back().defined() ? 0 : 1;
    }
    // The fused kernel takes all buffers or none (first step); a group where only some parameters have
    // one (a parameter without a gradient so far) takes the foreach path, as torch.optim's would.
    if (impl_ == OptimizerImpl::Fused && (momentum == 0.0 || missing == 0 || missing == params.size())) {
      const bool first = momentum != 0.0 && missing == params.size();
      for (size_t i = 0; i < params.size(); ++i) {
        grads[i] = like_param(grads[i], params[i]);
        if (bufs[i].defined() && !bufs[i].strides().equals(params[i].strides())) {
          bufs[i] = like_param(bufs[i], params[i]);
          set_buffer(params[i], bufs[i]);
        }
      }
      if (first) {
        for (size_t i = 0; i < params.size(); ++i) {
          bufs[i] = at::empty_like(params[i]);
          set_buffer(params[i], bufs[i]);
        }
      }
      at::_fused_sgd_(params, grads, momentum == 0.0 ? std::vector<at::Tensor>{} : bufs, wd, momentum, lr, dampening,
                      nesterov, /*maximize=*/false, first);
      return;
    }
    // torch.optim's _multi_tensor_sgd, call for call.
    if (wd != 0.0) grads = at::_foreach_add(grads, params, wd);
    if (momentum != 0.0) {
      if (missing == 0) {
        at::_foreach_mul_(bufs, momentum);
        at::_foreach_add_(bufs, grads, 1.0 - dampening);
      } else {
        for (size_t i = 0; i < params.size(); ++i) {
          if (!bufs[i].defined()) {
            bufs[i] = grads[i].detach().clone();
            set_buffer(params[i], bufs[i]);
          } else {
            bufs[i].mul_(momentum).add_(grads[i], 1.0 - dampening);
          }
        }
      }
      if (nesterov) {
        at::_foreach_add_(grads, bufs, momentum);
      } else {
        grads = bufs;
      }
    }
    at::_foreach_add_(params, grads, -lr);
  }

  OptimizerImpl impl_;
};

bool no_decay(const std::string& name, const at::Tensor& p) {
  return p.dim() <= 1 || name == "bias" || (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0);
}

}  // namespace

const char* to_string(OptimizerImpl impl) {
  switch (impl) {
    case OptimizerImpl::Loop: return "loop";
    case OptimizerImpl::Foreach: return "foreach";
    case OptimizerImpl::Fused: return "fused";
  }
  return "?";
}

OptimizerImpl auto_optimizer_impl(const c10::Device& device) {
  return device.is_cpu() || device.is_cuda() ? OptimizerImpl::Fused : OptimizerImpl::Foreach;
}

BuiltOptimizer make_optimizer(const Params& p, const std::vector<std::pair<std::string, at::Tensor>>& named,
                              const c10::Device& device) {
  const std::string name = p.str("name"), choice = p.str("implementation");
  OptimizerImpl impl = choice == "loop"      ? OptimizerImpl::Loop
                       : choice == "foreach" ? OptimizerImpl::Foreach
                       : choice == "fused"   ? OptimizerImpl::Fused
                                             : auto_optimizer_impl(device);
  if (impl == OptimizerImpl::Fused && !(device.is_cpu() || device.is_cuda()))
    throw std::invalid_argument("[optimizer] implementation = \"fused\" needs a CPU or CUDA device, the run's is " +
                                device.str() + "; use \"foreach\" or \"auto\"");
  if (impl == OptimizerImpl::Fused)
    for (const auto& [n, t] : named)
      if (!at::isFloatingType(t.scalar_type()))
        throw std::invalid_argument("[optimizer] implementation = \"fused\" needs floating-point parameters; '" + n +
                                    "' is " + std::string(c10::toString(t.scalar_type())) + "; use \"foreach\"");
  if (name == "sgd" && p.boolean("nesterov") && p.real("momentum") <= 0.0)
    throw std::invalid_argument("[optimizer] nesterov = true needs momentum > 0");

  const double wd = p.real("weight_decay");
  std::vector<at::Tensor> decay, plain;
  for (const auto& [n, t] : named) (p.boolean("no_decay_norm_and_bias") && no_decay(n, t) ? plain : decay).push_back(t);

  // Parameter groups are built with the defaults and then given their weight decay: LibTorch 2.x merges
  // a group's options with the optimizer's defaults field by field and takes the default wherever the
  // group's value equals the option type's own default (SGDOptions' weight_decay is 0), which would
  // silently put decay back on the no-decay group.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty() || plain.empty()) groups.emplace_back(decay);
  if (!plain.empty()) groups.emplace_back(plain);
  BuiltOptimizer out;
  out.impl = impl;
  if (name == "sgd") {
    auto options = SGDOptions(p.real("lr")).momentum(p.real("momentum")).nesterov(p.boolean("nesterov")).weight_decay(wd);
    out.optimizer = std::make_unique<SGD>(std::move(groups), options, impl);
  } else {
    auto options = AdamWOptions(p.real("lr")).betas({p.real("beta1"), p.real("beta2")}).eps(p.real("eps")).weight_decay(wd);
    out.optimizer = std::make_unique<AdamW>(std::move(groups), options, impl);
  }
  if (!plain.empty()) {
    auto& options = out.optimizer->param_groups().back().options();
    if (name == "sgd")
      static_cast<SGDOptions&>(options).weight_decay(0.0);
    else
      static_cast<AdamWOptions&>(options).weight_decay(0.0);
  }
  out.description = name + " (" + to_string(impl) + (choice == "auto" ? ", auto" : "") + ")";
  if (!plain.empty())
    out.description += ": weight decay on " + std::to_string(decay.size()) + " tensors, none on " +
                       std::to_string(plain.size()) + " biases and norm weights";
  return out;
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
