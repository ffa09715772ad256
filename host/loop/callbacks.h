// The run's [[callback]] plugins, called in file order, each call guarded; and the Control a callback
// gets while a stage runs.
#pragma once

#include "state/checkpoint.h"
#include "state/providers.h"
#include "plugins/plugin_guard.h"

#include <loom/callback.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace loom::host {

class StageControl final : public Control {
 public:
  using Cloner = std::function<std::shared_ptr<Model>(const Model&)>;
  StageControl(bool primary, Cloner cloner, std::filesystem::path run_dir, std::map<std::string, MetricValue>& summary,
               Logger& logger)
      : primary_(primary), cloner_(std::move(cloner)), run_dir_(std::move(run_dir)), summary_(summary), logger_(logger) {}

  void stop_stage(const std::string& reason) override;
  bool primary() const override { return primary_; }
  std::shared_ptr<Model> clone_model(const Model& model) override { return cloner_(model); }
  std::filesystem::path save_weights(Model& model, const std::filesystem::path& relative) override;
  void summarize(const std::string& key, const MetricValue& value) override { summary_[key] = value; }
  Logger& logger() override { return logger_; }
  void set_lr(std::optional<double> lr) override { lr_ = lr; }
  void scale_lr(double factor) override;
  /// The learning rate a step uses when the schedule says `scheduled` (a callback may override or scale it).
  double lr_for(double scheduled) const { return lr_ ? *lr_ : scheduled * lr_scale_; }

  bool stop_requested() const { return stop_; }
  const std::string& stop_reason() const { return reason_; }
  /// A new stage starts with no stop pending.
  void reset() { stop_ = false, reason_.clear(), lr_.reset(), lr_scale_ = 1.0; }
  /// Another rank asked to stop (data-parallel agreement).
  void adopt_stop() {
    if (!stop_) stop_ = true, reason_ = "another rank's callback stopped the stage";
  }

 private:
  bool primary_;
  Cloner cloner_;
  std::filesystem::path run_dir_;
  std::map<std::string, MetricValue>& summary_;
  Logger& logger_;
  bool stop_ = false;
  std::string reason_;
  std::optional<double> lr_;
  double lr_scale_ = 1.0;
};

class CallbackSet {
 public:
  /// `id`: the table's `id = "…"` ("" when it has none); `table`: where it is configured ("callback[2]");
  /// `params`: its parameters (params_text), recorded with its state. Refuses a second callback that
  /// would keep its state under a key already taken.
  void add(PluginRef who, std::shared_ptr<Callback> callback, const std::string& id = {}, std::string table = {},
           std::string params = {});
  bool empty() const { return entries_.empty(); }

  void stage_start(const StageInfo& stage, Model& model, Control& control);
  void resume(const StageInfo& stage, Model& model, Control& control);
  void optimizer_step(const StepInfo& step, Model& model, Control& control);
  /// The first substitute for validation, or nullptr.
  void train_epoch_end(const EpochReport& report, Model& live, Control& control);
  Model* eval_model(Model& live);
  std::map<std::string, MetricValue> epoch_metrics();
  void validation_end(const EpochReport& report, Model& model, Control& control);
  void stage_end(const StageInfo& stage, Model& model, Control& control);
  /// The first callback's best-model file, if any keeps one.
  std::optional<std::filesystem::path> best_model() const;

  /// One state provider per callback (StatePhase::Run), keyed "callback/<name>", "callback/<name>#2", …
  /// or "callback/<id>"; its entry holds the callback's state_dict() and its table's parameters.
  std::vector<StateRegistry::Registration> register_state(StateRegistry& registry);

 private:
  struct Entry {
    PluginRef who;
    std::shared_ptr<Callback> callback;
    StateKey state;
  };
  std::vector<Entry> entries_;
};

}  // namespace loom::host
