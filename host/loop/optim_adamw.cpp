// AdamW, foreach and fused: torch.optim's _multi_tensor_adam (decoupled weight decay) and _fused_adamw_.
#include "loop/optim_bucketed.h"

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_addcdiv.h>
#include <ATen/ops/_foreach_addcmul.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_lerp.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_sqrt.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <unordered_map>

namespace loom::host::optim_detail {
namespace {

using torch::optim::AdamWOptions;
using torch::optim::AdamWParamState;

class AdamW final : public BucketedOptimizer<torch::optim::AdamW, AdamWOptions> {
 public:
  using BucketedOptimizer::BucketedOptimizer;

  void load(torch::serialize::InputArchive& archive) override {
    torch::optim::AdamW::load(archive);
    step_tensors_.clear();  // rebuilt from the loaded integer steps
  }

 private:
  void check_options(const AdamWOptions& o) const override {
    if (o.amsgrad()) throw std::logic_error("Loom's AdamW does not implement amsgrad");
  }

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

  void update(const std::vector<at::Tensor>& params, const AdamWOptions& o) override {
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
      at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, {}, step_tensors(params, steps), lr, beta1, beta2, wd,
                        eps, /*amsgrad=*/false, /*maximize=*/false);
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

  /// torch.optim's _fused_adamw: the kernel reads each parameter's step from a float tensor on its
  /// device, incremented before the call. `steps`: the integer steps, already incremented.
  std::vector<at::Tensor> step_tensors(const std::vector<at::Tensor>& params, const std::vector<int64_t>& steps) {
    std::vector<at::Tensor> out;
    for (size_t i = 0; i < params.size(); ++i) {
      auto [it, fresh] = step_tensors_.try_emplace(params[i].unsafeGetTensorImpl());
      if (fresh) {
        it->second = at::scalar_tensor(static_cast<double>(steps[i]), at::TensorOptions().dtype(at::kFloat).device(params[i].device()));
      } else {
        it->second.add_(1);
      }
      out.push_back(it->second);
    }
    return out;
  }

  /// Fused only: each parameter's step as the float tensor the kernel reads, kept in step with the
  /// integer AdamWParamState::step (which is what checkpoints hold).
  std::unordered_map<const void*, at::Tensor> step_tensors_;
};

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_adamw(std::vector<torch::optim::OptimizerParamGroup> groups,
                                                    AdamWOptions defaults, OptimizerImpl impl) {
  return std::make_unique<AdamW>(std::move(groups), std::move(defaults), impl);
}

}  // namespace loom::host::optim_detail
