#include "loop/callbacks.h"

#include "state/durable_file.h"

#include <cmath>

namespace loom::host {

namespace fs = std::filesystem;

void StageControl::stop_stage(const std::string& reason) {
  if (stop_) return;  // the first reason stands
  stop_ = true;
  reason_ = reason;
}

fs::path StageControl::save_weights(Model& model, const fs::path& relative) {
  if (relative.empty() || relative.is_absolute() || relative.lexically_normal().string().rfind("..", 0) == 0)
    throw std::invalid_argument("save_weights: '" + relative.string() + "' is not a relative path inside the run directory");
  const fs::path file = run_dir_ / relative;
  if (!primary_) return file;
  make_directories(file.parent_path());
  write_model(file, model);
  return file;
}

void StageControl::scale_lr(double factor) {
  if (!(factor > 0.0) || !std::isfinite(factor))
    throw std::invalid_argument("scale_lr: the factor must be a positive finite number, got " + std::to_string(factor));
  lr_scale_ = factor;
}

void CallbackSet::add(PluginRef who, std::shared_ptr<Callback> callback) {
  std::string key = "callback/" + std::to_string(entries_.size()) + ":" + who.name;
  entries_.push_back({std::move(who), std::move(callback), std::move(key)});
}

void CallbackSet::stage_start(const StageInfo& stage, Model& model, Control& control) {
  for (auto& e : entries_) guarded(e.who, "on_stage_start", [&] { e.callback->on_stage_start(stage, model, control); });
}

void CallbackSet::resume(const StageInfo& stage, Model& model, Control& control) {
  for (auto& e : entries_) guarded(e.who, "on_resume", [&] { e.callback->on_resume(stage, model, control); });
}

void CallbackSet::optimizer_step(const StepInfo& step, Model& model, Control& control) {
  for (auto& e : entries_) guarded(e.who, "on_optimizer_step", [&] { e.callback->on_optimizer_step(step, model, control); });
}

void CallbackSet::train_epoch_end(const EpochReport& report, Model& live, Control& control) {
  for (auto& e : entries_)
    guarded(e.who, "on_train_epoch_end", [&] { e.callback->on_train_epoch_end(report, live, control); });
}

Model* CallbackSet::eval_model(Model& live) {
  for (auto& e : entries_)
    if (Model* m = guarded(e.who, "eval_model", [&] { return e.callback->eval_model(live); })) return m;
  return nullptr;
}

std::map<std::string, MetricValue> CallbackSet::epoch_metrics() {
  std::map<std::string, MetricValue> all;
  for (auto& e : entries_)
    for (auto& [k, v] : guarded(e.who, "epoch_metrics", [&] { return e.callback->epoch_metrics(); })) all[k] = v;
  return all;
}

void CallbackSet::validation_end(const EpochReport& report, Model& model, Control& control) {
  for (auto& e : entries_)
    guarded(e.who, "on_validation_end", [&] { e.callback->on_validation_end(report, model, control); });
}

void CallbackSet::stage_end(const StageInfo& stage, Model& model, Control& control) {
  for (auto& e : entries_) guarded(e.who, "on_stage_end", [&] { e.callback->on_stage_end(stage, model, control); });
}

std::optional<fs::path> CallbackSet::best_model() const {
  for (const auto& e : entries_)
    if (auto path = guarded(e.who, "best_model", [&] { return e.callback->best_model(); })) return path;
  return std::nullopt;
}

void CallbackSet::save_state(CheckpointWriter& writer) const {
  for (const auto& e : entries_) writer.add(e.key, 1, guarded(e.who, "state_dict", [&] { return e.callback->state_dict(); }));
}

void CallbackSet::load_state(const CheckpointReader& reader) {
  for (auto& e : entries_) {
    if (!reader.has(e.key))
      throw CheckpointError(reader.file().string() + " holds no state for " + e.who.describe() +
                            ": the checkpoint was written with other [[callback]] tables");
    const StateDict state = reader.tensors(e.key);
    guarded(e.who, "load_state_dict", [&] { e.callback->load_state_dict(state); });
  }
}

}  // namespace loom::host
