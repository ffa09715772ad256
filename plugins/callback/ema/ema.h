// `ema`: an exponential moving average of the weights and float buffers, kept in a second model. It can
// stand in for the live model at validation (so the best checkpoint is chosen on averaged weights) and
// replace the live weights when the stage ends (so the stage's result, model.pt and the next
// self-training round use them).
#pragma once

#include <loom/callback.h>
#include <loom/context.h>
#include <loom/model.h>  // parameters() and buffers() of the live and the averaged model
#include <loom/registrar.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace loom::builtin {

class Ema final : public Callback {
 public:
  static FeatureInfo info();
  explicit Ema(const CreateContext& ctx);

  void on_stage_start(const StageInfo& stage, Model& model, Control& control) override;
  void on_resume(const StageInfo& stage, Model& model, Control& control) override;
  void on_optimizer_step(const StepInfo& step, Model& model, Control& control) override;
  Model* eval_model(Model& live) override;
  /// {"ema_decay": the decay of the last update (null before the first), "ema_updates": updates so far}.
  std::map<std::string, MetricValue> epoch_metrics() override;
  void on_stage_end(const StageInfo& stage, Model& model, Control& control) override;

  /// {"param/<name>", "buffer/<name>": the averaged tensors, "updates": int64}.
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  /// The decay of the update that follows `done` updates.
  double decay_after(int64_t done) const;
  void start_from(Model& model, Control& control);

  double decay_;
  bool warmup_;
  int64_t every_n_steps_;
  bool evaluate_;
  bool apply_at_end_;

  std::shared_ptr<Model> ema_;
  int64_t updates_ = 0;
  StateDict loaded_;  // from load_state_dict(), until on_resume() has a model to put it in
};

}  // namespace loom::builtin
