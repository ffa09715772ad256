// A callback that logs the learning rate and the loss every N optimizer steps, and adds the epoch's mean
// learning rate to each epoch's metrics. The smallest useful callback: it shows the hooks, the Control a
// hook receives, and checkpointed state that makes a resumed run report exactly what an uninterrupted one
// would.
#pragma once

#include <loom/library.h>   // LOOM_PLUGIN_LIBRARY, Registrar, FeatureInfo, CreateContext
#include <loom/callback.h>  // the one kind this library implements

#include <cstdint>
#include <map>
#include <string>

namespace example {

class LrLogger final : public loom::Callback {
 public:
  explicit LrLogger(const loom::CreateContext& ctx);

  void on_stage_start(const loom::StageInfo& stage, loom::Model& model, loom::Control& control) override;
  void on_resume(const loom::StageInfo& stage, loom::Model& model, loom::Control& control) override;
  void on_optimizer_step(const loom::StepInfo& step, loom::Model& model, loom::Control& control) override;
  std::map<std::string, loom::MetricValue> epoch_metrics() override;

  loom::StateDict state_dict() const override;
  void load_state_dict(const loom::StateDict& state) override;

  static loom::FeatureInfo info();

 private:
  int64_t every_n_steps_;
  std::string stage_;
  // The epoch in progress: a checkpoint taken mid-epoch carries these, so lr_mean covers every step of
  // the epoch even when the run was interrupted and resumed inside it.
  double lr_sum_ = 0.0;
  int64_t steps_ = 0;
};

}  // namespace example
