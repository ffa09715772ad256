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

void CallbackSet::add(PluginRef who, std::shared_ptr<Callback> callback, const std::string& id, std::string table,
                      std::string params) {
  std::vector<StateKey*> earlier;
  for (auto& e : entries_) earlier.push_back(&e.state);
  StateKey state = assign_state_key(earlier, "callback", who.name, who.describe(), id, std::move(table), std::move(params));
  entries_.push_back({std::move(who), std::move(callback), std::move(state)});
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

std::vector<StateRegistry::Registration> CallbackSet::register_state(StateRegistry& registry) {
  std::vector<StateRegistry::Registration> out;
  for (size_t i = 0; i < entries_.size(); ++i) {
    StateProvider p;
    p.key = entries_[i].state.key;
    p.version = 2;  // 1 (format 2): the state_dict alone
    p.phase = StatePhase::Run;
    p.owner = entries_[i].who.describe();
    p.save = [this, i](EntryWriter& w) {
      const Entry& e = entries_[i];
      Fields f;
      f.strings["table_params"] = e.state.params;
      w.write(guarded(e.who, "state_dict", [&] { return e.callback->state_dict(); }), f);
    };
    p.load = [this, i](const EntryReader& r) {
      Entry& e = entries_[i];
      if (e.state.by_order) check_same_table(r, e.state.params, e.state.table, e.who.name);
      const StateDict state = r.tensors();
      guarded(e.who, "load_state_dict", [&] { e.callback->load_state_dict(state); });
    };
    out.push_back(registry.add(std::move(p)));
  }
  return out;
}

}  // namespace loom::host
