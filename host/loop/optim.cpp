// [optimizer]: the implementation chosen for the device, the parameter groups (weight decay, or none on
// biases and norm weights), and the optimizer built over them (optim_sgd.cpp, optim_adamw.cpp).
#include "loop/optim.h"

#include "loop/optim_bucketed.h"

#include <stdexcept>

namespace loom::host {
namespace {

bool no_decay(const std::string& name, const at::Tensor& p) {
  return p.dim() <= 1 || name == "bias" || (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0);
}

/// [optimizer] implementation on `device`, refused where the device or the parameters cannot take it.
OptimizerImpl choose_impl(const Params& p, const std::vector<std::pair<std::string, at::Tensor>>& named,
                          const c10::Device& device) {
  const std::string choice = p.str("implementation");
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
  return impl;
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
  using torch::optim::AdamWOptions;
  using torch::optim::SGDOptions;
  const std::string name = p.str("name"), choice = p.str("implementation");
  const OptimizerImpl impl = choose_impl(p, named, device);
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
    out.optimizer = optim_detail::make_sgd(std::move(groups), options, impl);
  } else {
    auto options = AdamWOptions(p.real("lr")).betas({p.real("beta1"), p.real("beta2")}).eps(p.real("eps")).weight_decay(wd);
    out.optimizer = optim_detail::make_adamw(std::move(groups), options, impl);
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

}  // namespace loom::host
