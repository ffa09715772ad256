#include "loop/metric_hub.h"

#include <chrono>

namespace loom::host {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void MetricHub::add(PluginRef who, std::shared_ptr<MetricSink> sink, const std::string& id, std::string table,
                    std::string params) {
  std::vector<StateKey*> earlier;
  for (auto& e : entries_) earlier.push_back(&e.state);
  StateKey state = assign_state_key(earlier, "metric_sink", who.name, who.describe(), id, std::move(table), std::move(params));
  const int64_t interval = guarded(who, "step_interval", [&] { return sink->step_interval(); });
  entries_.push_back({std::move(who), std::move(sink), std::move(state), interval});
}

void MetricHub::write(MetricRecord record) {
  if (!writing_) return;
  if (record.wall_time == 0.0) record.wall_time = unix_now();
  for (auto& e : entries_) guarded(e.who, "write", [&] { e.sink->write(record); });
}

bool MetricHub::step_due(int64_t step) const {
  if (!writing_) return false;
  for (const auto& e : entries_)
    if (e.interval > 0 && step % e.interval == 0) return true;
  return false;
}

void MetricHub::write_step(MetricRecord record) {
  if (!writing_) return;
  if (record.wall_time == 0.0) record.wall_time = unix_now();
  for (auto& e : entries_)
    if (e.interval > 0 && record.step % e.interval == 0) guarded(e.who, "write", [&] { e.sink->write(record); });
}

void MetricHub::flush() {
  if (!writing_) return;
  for (auto& e : entries_) guarded(e.who, "flush", [&] { e.sink->flush(); });
}

std::vector<StateRegistry::Registration> MetricHub::register_state(StateRegistry& registry) {
  std::vector<StateRegistry::Registration> out;
  for (size_t i = 0; i < entries_.size(); ++i) {
    StateProvider p;
    p.key = entries_[i].state.key;
    p.version = 2;  // 1 (format 2): the state_dict alone
    p.phase = StatePhase::Run;
    p.owner = entries_[i].who.describe();
    p.save = [this, i](EntryWriter& w) {
      Entry& e = entries_[i];
      Fields f;
      f.strings["table_params"] = e.state.params;
      if (!writing_) return w.write({}, f);
      guarded(e.who, "flush", [&] { e.sink->flush(); });
      w.write(guarded(e.who, "state_dict", [&] { return e.sink->state_dict(); }), f);
    };
    p.load = [this, i](const EntryReader& r) {
      if (!writing_) return;
      Entry& e = entries_[i];
      if (e.state.by_order) check_same_table(r, e.state.params, e.state.table, e.who.name);
      const StateDict state = r.tensors();
      guarded(e.who, "load_state_dict", [&] { e.sink->load_state_dict(state); });
    };
    out.push_back(registry.add(std::move(p)));
  }
  return out;
}

}  // namespace loom::host
