// A callback hooks into the training loop without editing the host: weight averaging (EMA), early
// stopping, keeping the best checkpoint, a recording probe. Callbacks run in file order ([[callback]]
// tables), on every rank of a data-parallel run (they see identical weights and reports there).
//
//   [[callback]]
//   plugin = "ema"
//   decay = 0.999
//
// When each hook fires, per training stage (TrainerServices::train):
//
//   on_stage_start ─┬─ per optimizer step that was applied (never a skipped one): on_optimizer_step
//                   ├─ per epoch: on_train_epoch_end (live model) → eval_model → validation → epoch_metrics
//                   │             → on_validation_end → sinks
//                   └─ on_stage_end (after the last epoch, or after a stop), then the stage's weights are final
//
// Exactly once per event over the whole run, interruptions included: a run resumed from a checkpoint
// calls load_state_dict() and then on_resume() instead of firing again what had happened before the
// checkpoint; a stage that finished before the interruption fires nothing again.
//
// The data: a callback's factory gets the run's dataset (after the cache) as CreateContext::dataset, like a
// model's; keep the shared_ptr to read splits, labels or samples later. State: state_dict() tensors are
// stored in the checkpoint as they are and come back to load_state_dict() on the device they were saved
// from (the run's device, for state kept there).
//
// loom::Model is only declared here, so a callback that does not touch the model's modules compiles
// without torch::nn (seconds instead of ~10 s a file). One that does — parameters(), named_buffers(),
// forward — includes <loom/model.h> itself.
#pragma once

#include <loom/kinds.h>
#include <loom/log.h>
#include <loom/metrics.h>
#include <loom/state.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace loom {

class Model;  // <loom/model.h>: a torch::nn::Module with a virtual forward

/// The stage a hook belongs to.
struct StageInfo {
  std::string stage;        ///< TrainRequest::stage ("supervised", "round1/student", …)
  int64_t round = 0;
  int64_t epochs = 0;       ///< planned epochs of the stage
  int64_t total_steps = 0;  ///< planned optimizer steps of the stage (the LR schedule's length)
};

/// An optimizer step that was applied.
struct StepInfo {
  int64_t step = 0;         ///< optimizer steps applied in this stage, this one included (1, 2, …)
  int64_t epoch = 0;        ///< 1-based epoch the step belongs to
  double lr = 0.0;          ///< the learning rate this step used
  /// Mean loss over this step's samples on this rank: a 0-dim double tensor on the training device,
  /// detached. Reading it (item()) waits for the device, so read it only when needed.
  at::Tensor loss;
  double grad_norm = -1.0;  ///< total norm of the unscaled gradients when the precision step computed it
};

/// The epoch's report as sinks will receive it: train_loss, train_accuracy, val_loss, val_accuracy, lr,
/// samples_per_second, … plus every callback's epoch_metrics().
struct EpochReport {
  std::string stage;
  int64_t round = 0;
  int64_t epoch = 0;  ///< 1-based
  int64_t step = 0;   ///< optimizer steps applied in the stage so far
  std::map<std::string, MetricValue> metrics;

  std::optional<double> number(const std::string& key) const {
    auto it = metrics.find(key);
    return it == metrics.end() ? std::nullopt : as_number(it->second);
  }
};

/// What the loop offers a callback while a stage runs.
class Control {
 public:
  virtual ~Control() = default;
  /// Ends the current stage with `reason` (logged, and in summary.json as "<stage>/stopped"): from
  /// on_validation_end at once, from on_optimizer_step at the end of the current accumulation group. All
  /// ranks stop together. The stage's remaining epochs are not run; on_stage_end still fires.
  virtual void stop_stage(const std::string& reason) = 0;
  /// True on the process that writes the run directory (rank 0); others compute the same but must not
  /// write files.
  virtual bool primary() const = 0;
  /// A new model of the run's [model] architecture on the run's device, with `model`'s weights and
  /// buffers copied in. Does not count as one of the run's create_model() calls, and leaves every random
  /// stream untouched (a run with and without this callback draws the same numbers).
  virtual std::shared_ptr<Model> clone_model(const Model& model) = 0;
  /// Saves `model`'s weights atomically at run_dir()/`relative` (loadable like model.pt); on rank 0 only,
  /// a no-op elsewhere. Returns the absolute path.
  virtual std::filesystem::path save_weights(Model& model, const std::filesystem::path& relative) = 0;
  /// Adds (or replaces) a top-level key of summary.json.
  virtual void summarize(const std::string& key, const MetricValue& value) = 0;
  virtual Logger& logger() = 0;
  /// Since SDK 0.6. The learning rate of every optimizer step from the next one on, in place of the
  /// [lr_schedule]'s value (e.g. SWA's constant rate); std::nullopt hands it back to the schedule. The
  /// epoch's `lr` metric reports what is used. Lasts until changed or the stage ends; it is not saved in
  /// the checkpoint: a callback that sets it keeps the value in its own state and sets it again in
  /// on_resume().
  virtual void set_lr(std::optional<double> lr) = 0;
  /// Since SDK 0.6. Multiplies the schedule's value (1.0: as scheduled); ignored while set_lr() holds a
  /// value. Same lifetime and resume rule as set_lr().
  virtual void scale_lr(double factor) = 0;
};

class Callback {
 public:
  virtual ~Callback() = default;

  virtual void on_stage_start(const StageInfo& stage, Model& model, Control& control) {
    (void)stage, (void)model, (void)control;
  }
  /// A resumed process continues `stage` mid-way: load_state_dict() has run, the model holds the
  /// checkpoint's weights. (on_stage_start fired in the process that started the stage.)
  virtual void on_resume(const StageInfo& stage, Model& model, Control& control) {
    (void)stage, (void)model, (void)control;
  }
  /// After an optimizer step that was applied, before the gradients are zeroed.
  virtual void on_optimizer_step(const StepInfo& step, Model& model, Control& control) {
    (void)step, (void)model, (void)control;
  }
  /// Since SDK 0.6. After the epoch's last optimizer step, before validation: `model` is always the live
  /// model (an SWA average is updated here), `report` holds the epoch's training metrics so far
  /// (train_loss, train_accuracy, lr, samples_per_second, …; no val_* yet).
  virtual void on_train_epoch_end(const EpochReport& report, Model& model, Control& control) {
    (void)report, (void)model, (void)control;
  }
  /// The model validation (and the stage's checkpoints of it) should use instead of the live one, e.g.
  /// EMA weights; nullptr: the live model. The first callback returning one wins. When substituted, the
  /// report carries the live model's figures as live_val_loss / live_val_accuracy too.
  virtual Model* eval_model(Model& live) {
    (void)live;
    return nullptr;
  }
  /// Extra metrics for the epoch's report (read before any on_validation_end).
  virtual std::map<std::string, MetricValue> epoch_metrics() { return {}; }
  /// After validation; `model` is the model validation ran on (eval_model() when one was substituted).
  virtual void on_validation_end(const EpochReport& report, Model& model, Control& control) {
    (void)report, (void)model, (void)control;
  }
  /// After the stage's last epoch (or a stop). `model` is the live model: what it holds afterwards is
  /// the stage's result (saved as the stage's weights, tested, handed to the next round) — EMA copies
  /// its averaged weights in here.
  virtual void on_stage_end(const StageInfo& stage, Model& model, Control& control) {
    (void)stage, (void)model, (void)control;
  }
  /// A weights file (under the run directory) this callback keeps as the best model; [run] test_on =
  /// "best" tests it. nullopt: this callback keeps none. Asked once before training, and at the end.
  virtual std::optional<std::filesystem::path> best_model() const { return std::nullopt; }

  virtual StateDict state_dict() const { return {}; }
  virtual void load_state_dict(const StateDict& state) { (void)state; }
};

/// The callback kind: called in file order.
template <>
struct KindTraits<Callback> : KindTraitsBase {
  static constexpr Kind kind = Kind::Callback;
  static constexpr Cardinality cardinality = Cardinality::Many;
  static constexpr int order = 90;
};

}  // namespace loom
