// A precision strategy owns how the forward runs (autocast scope), how the loss is back-propagated
// (e.g. scaled), and the optimizer step (unscale once, clip, inf/NaN check, step or skip, scaler update).
//
// The host's loop, per optimizer step (see docs/architecture.md):
//   for each micro-batch of the group:
//     { auto scope = precision.forward_scope(device); logits = model(x); loss = criterion(...) }
//     precision.backward(loss * weight)          // weight = micro samples / group samples
//   result = precision.step(optimizer)           // exactly once per optimizer step
//   if (!result.skipped) lr_schedule.advance()   // a skipped step never advances the schedule
//   optimizer.zero_grad()
//
// torch::nn::Module and torch::optim::Optimizer are only declared here (their headers cost seconds a
// file): a strategy that calls optimizer.step() includes <torch/optim/optimizer.h>, one that walks the
// model's parameters <torch/nn/module.h> (or <loom/precision_helpers.h>, which includes both).
#pragma once

#include <loom/kinds.h>
#include <loom/state.h>

#include <c10/core/Device.h>

#include <map>
#include <memory>
#include <string>

namespace torch::nn {
class Module;  // <torch/nn/module.h>
}
namespace torch::optim {
class Optimizer;  // <torch/optim/optimizer.h>
}

namespace loom {

/// RAII: active while the forward pass and loss run; restores the previous state on destruction, also
/// when an exception leaves the scope.
class ForwardScope {
 public:
  virtual ~ForwardScope() = default;
};

struct StepResult {
  bool skipped = false;      ///< true when the step was not applied (e.g. inf/NaN gradients)
  double grad_norm = -1.0;   ///< total norm of the unscaled gradients when clipping computed it, else -1
};

class Precision {
 public:
  static constexpr Kind kKind = Kind::Precision;
  virtual ~Precision() = default;

  /// Called once with the model on its device, before the optimizer is built (e.g. channels_last).
  virtual void prepare(torch::nn::Module& model, c10::Device device) {
    (void)model;
    (void)device;
  }
  virtual std::unique_ptr<ForwardScope> forward_scope(c10::Device device) = 0;
  /// Back-propagates an already-weighted loss (scaled, for loss-scaling strategies).
  virtual void backward(const at::Tensor& loss) = 0;
  /// One optimizer step over the accumulated gradients. Does not zero them (the host does).
  virtual StepResult step(torch::optim::Optimizer& optimizer) = 0;

  /// Checkpointed state (e.g. loss scale and growth tracker).
  virtual StateDict state_dict() const { return {}; }
  virtual void load_state_dict(const StateDict& state) { (void)state; }
  /// Extra per-epoch metrics (e.g. {"loss_scale", …}, {"skipped_steps", …}); read once per epoch.
  virtual std::map<std::string, double> epoch_metrics() { return {}; }
};

}  // namespace loom
