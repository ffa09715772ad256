// SGD, foreach and fused: torch.optim's _multi_tensor_sgd and _fused_sgd_.
#include "loop/optim_bucketed.h"

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_fused_sgd.h>

namespace loom::host::optim_detail {
namespace {

using torch::optim::SGDOptions;
using torch::optim::SGDParamState;

class SGD final : public BucketedOptimizer<torch::optim::SGD, SGDOptions> {
 public:
  using BucketedOptimizer::BucketedOptimizer;

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

  void update(const std::vector<at::Tensor>& params, const SGDOptions& o) override {
    auto grads = grads_of(params);
    std::vector<at::Tensor> bufs;
    size_t missing = 0;
    for (const auto& p : params) {
      bufs.push_back(buffer(p));
      missing += bufs.back().defined() ? 0 : 1;
    }
    // The fused kernel takes all buffers or none (first step); a group where only some parameters have
    // one (a parameter without a gradient so far) takes the foreach path, as torch.optim's would.
    if (impl_ == OptimizerImpl::Fused && (o.momentum() == 0.0 || missing == 0 || missing == params.size())) {
      fused_update(params, grads, bufs, o, o.momentum() != 0.0 && missing == params.size());
    } else {
      foreach_update(params, std::move(grads), bufs, o, missing);
    }
  }

  /// _fused_sgd_; `first`: no parameter has a momentum buffer yet (the kernel fills new ones).
  void fused_update(const std::vector<at::Tensor>& params, std::vector<at::Tensor>& grads,
                    std::vector<at::Tensor>& bufs, const SGDOptions& o, bool first) {
    const double momentum = o.momentum();
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
    at::_fused_sgd_(params, grads, momentum == 0.0 ? std::vector<at::Tensor>{} : bufs, o.weight_decay(), momentum,
                    o.lr(), o.dampening(), o.nesterov(), /*maximize=*/false, first);
  }

  /// torch.optim's _multi_tensor_sgd, call for call. `missing`: how many parameters have no buffer yet.
  void foreach_update(const std::vector<at::Tensor>& params, std::vector<at::Tensor> grads,
                      std::vector<at::Tensor>& bufs, const SGDOptions& o, size_t missing) {
    const double lr = o.lr(), wd = o.weight_decay(), momentum = o.momentum(), dampening = o.dampening();
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
      if (o.nesterov()) {
        at::_foreach_add_(grads, bufs, momentum);
      } else {
        grads = bufs;
      }
    }
    at::_foreach_add_(params, grads, -lr);
  }
};

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_sgd(std::vector<torch::optim::OptimizerParamGroup> groups,
                                                  SGDOptions defaults, OptimizerImpl impl) {
  return std::make_unique<SGD>(std::move(groups), std::move(defaults), impl);
}

}  // namespace loom::host::optim_detail
