// What the foreach and fused optimizers (optim_adamw.cpp, optim_sgd.cpp) share: the step that walks
// every parameter group's (device, dtype) buckets, and the small tensor helpers their updates use.
#pragma once

#include "loop/optim.h"

#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/sgd.h>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <c10/core/GradMode.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace loom::host::optim_detail {

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

inline std::vector<at::Tensor> grads_of(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  out.reserve(params.size());
  for (const auto& p : params) out.push_back(p.grad());
  return out;
}

/// `t` in `p`'s layout. The fused kernels walk a parameter, its gradient and its state as flat arrays, so
/// they must share one layout; autograd gives gradients their parameter's strides, but a gradient set by
/// hand, or state restored from a checkpoint of a contiguous run, may have others.
inline at::Tensor like_param(const at::Tensor& t, const at::Tensor& p) {
  if (t.strides() == p.strides()) return t;
  return at::empty_like(p).copy_(t);
}

inline std::vector<at::Scalar> scalars(const std::vector<double>& values) { return {values.begin(), values.end()}; }

/// LibTorch's optimizer `Base` (its options type `Options`, its per-parameter state) stepped by
/// `update`, one call per (device, dtype) bucket of each parameter group; OptimizerImpl::Loop steps with
/// Base's own per-tensor loop instead.
template <typename Base, typename Options>
class BucketedOptimizer : public Base {
 public:
  BucketedOptimizer(std::vector<torch::optim::OptimizerParamGroup> groups, Options defaults, OptimizerImpl impl)
      : Base(std::move(groups), std::move(defaults)), impl_(impl) {}

  at::Tensor step(torch::optim::Optimizer::LossClosure closure) override {
    if (impl_ == OptimizerImpl::Loop) return Base::step(std::move(closure));
    at::Tensor loss;
    if (closure) {
      at::AutoGradMode enable(true);
      loss = closure();
    }
    at::NoGradGuard no_grad;
    for (auto& group : this->param_groups_) {
      auto& o = static_cast<Options&>(group.options());
      check_options(o);
      for_each_bucket(group.params(), [&](const std::vector<at::Tensor>& params) { update(params, o); });
    }
    return loss;
  }

 protected:
  /// Throws for a group's options this implementation does not support.
  virtual void check_options(const Options&) const {}
  /// One step of the parameters of one bucket (each has a gradient; one device, one dtype).
  virtual void update(const std::vector<at::Tensor>& params, const Options& o) = 0;

  OptimizerImpl impl_;
};

/// The [optimizer]s, over parameter groups built with `defaults`.
std::unique_ptr<torch::optim::Optimizer> make_sgd(std::vector<torch::optim::OptimizerParamGroup> groups,
                                                  torch::optim::SGDOptions defaults, OptimizerImpl impl);
std::unique_ptr<torch::optim::Optimizer> make_adamw(std::vector<torch::optim::OptimizerParamGroup> groups,
                                                    torch::optim::AdamWOptions defaults, OptimizerImpl impl);

}  // namespace loom::host::optim_detail
