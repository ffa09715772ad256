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
#include <loom/metrics.h>
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

/// What prepare() did to a model that the host's loop must know (since SDK 0.6 returned, not inferred).
struct PreparedModel {
  /// The layout the model's 4-D input batches should have: ChannelsLast when prepare() laid the model's
  /// 4-D weights out channels_last (the host then converts each batch once, after augmentation), else
  /// Contiguous. loom::apply_memory_format() (<loom/precision_helpers.h>) sets it for you.
  at::MemoryFormat input_memory_format = at::MemoryFormat::Contiguous;
};

struct StepResult {
  bool skipped = false;      ///< true when the step was not applied (e.g. inf/NaN gradients)
  double grad_norm = -1.0;   ///< total norm of the unscaled gradients when clipping computed it, else -1
};

class Precision {
 public:
  virtual ~Precision() = default;

  /// Called once per model the run creates, with the model on its device, before its optimizer is built
  /// (e.g. channels_last weights). The result tells the host how to feed the model; the default leaves
  /// the model as it is and its inputs contiguous.
  virtual PreparedModel prepare(torch::nn::Module& model, c10::Device device) {
    (void)model;
    (void)device;
    return {};
  }
  virtual std::unique_ptr<ForwardScope> forward_scope(c10::Device device) = 0;
  /// Back-propagates an already-weighted loss (scaled, for loss-scaling strategies).
  virtual void backward(const at::Tensor& loss) = 0;
  /// One optimizer step over the accumulated gradients. Does not zero them (the host does).
  virtual StepResult step(torch::optim::Optimizer& optimizer) = 0;

  /// Checkpointed state (e.g. loss scale and growth tracker).
  virtual StateDict state_dict() const { return {}; }
  virtual void load_state_dict(const StateDict& state) { (void)state; }
  /// Extra per-epoch metrics (e.g. {"loss_scale", 65536.0}, {"skipped_steps", int64_t{0}}), typed like a
  /// callback's; read once per epoch.
  virtual std::map<std::string, MetricValue> epoch_metrics() { return {}; }
};

/// The precision kind.
template <>
struct KindTraits<Precision> : KindTraitsBase {
  static constexpr Kind kind = Kind::Precision;
  static constexpr std::string_view neutral = "fp32";
  static constexpr int order = 60;
};

}  // namespace loom
