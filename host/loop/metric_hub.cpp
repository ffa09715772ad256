#include "loop/metric_hub.h"

#include <chrono>

namespace loom::host {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void MetricHub::add(PluginRef who, std::shared_ptr<MetricSink> sink) {
  std::string key = "metric_sink/" + std::to_string(entries_.size()) + ":" + who.name;
  const int64_t interval = guarded(who, "step_interval", [&] { return sink->step_interval(); });
  entries_.push_back({std::move(who), std::move(sink), std::move(key), interval});
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

void MetricHub::save_state(CheckpointWriter& writer) const {
  for (const auto& e : entries_)
    writer.add(e.key, 1, writing_ ? guarded(e.who, "state_dict", [&] { return e.sink->state_dict(); }) : StateDict{});
}

void MetricHub::load_state(const CheckpointReader& reader) {
  if (!writing_) return;
  for (auto& e : entries_) {
    if (!reader.has(e.key))
      throw CheckpointError(reader.file().string() + " holds no state for " + e.who.describe() +
                            ": the checkpoint was written with other [[metric_sink]] tables");
    const StateDict state = reader.tensors(e.key);
    guarded(e.who, "load_state_dict", [&] { e.sink->load_state_dict(state); });
  }
}

}  // namespace loom::host
