#include "jsonl_sink.h"

#include "metric_sink/common/sink_state.h"

#include <nlohmann/json.hpp>

namespace loom::builtin {

namespace {

nlohmann::json to_json(const MetricValue& value) {
  return std::visit(
      [](const auto& v) -> nlohmann::json {
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::monostate>) return nullptr;
        else return v;
      },
      value);
}

// One line. nlohmann's default object is a std::map, so keys come out sorted, as metrics.jsonl always had
// them. The record's own fields are set last: a value that happens to be called "stage" cannot hide them.
std::string line_of(const MetricRecord& record) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : record.values) j[key] = to_json(value);
  j["stage"] = record.stage;
  j["round"] = record.round;
  if (record.kind != RecordKind::Event) j["epoch"] = record.epoch;
  if (record.kind == RecordKind::Step) j["step"] = record.step;
  return j.dump() + '\n';
}

}  // namespace

FeatureInfo JsonlSink::info() {
  return {.name = "jsonl",
          .version = "1.0.0",
          .summary = "metrics.jsonl in the run directory, one JSON object per epoch and event; always on",
          .params = {ParamSpec::integer("every_n_steps", 0)
                         .at_least(0)
                         .doc("also write every Nth optimizer step's train_loss, lr, grad_norm to steps.jsonl (0: no)")}};
}

JsonlSink::JsonlSink(const CreateContext& ctx)
    : every_n_steps_(ctx.params.integer("every_n_steps")),
      metrics_(ctx.run.run_dir() / "metrics.jsonl"),
      steps_(ctx.run.run_dir() / "steps.jsonl") {}

void JsonlSink::write(const MetricRecord& record) {
  if (record.kind == RecordKind::Step) {
    // Another sink may have asked for a finer interval; the host sends the union.
    if (every_n_steps_ > 0 && record.step % every_n_steps_ == 0) steps_.append(line_of(record));
    return;
  }
  // Unbuffered writes: a crash loses no record already written, only ones not yet committed by a checkpoint
  // (and a resume cuts those back off).
  metrics_.append(line_of(record));
}

void JsonlSink::flush() {
  metrics_.sync();
  if (every_n_steps_ > 0) steps_.sync();
}

StateDict JsonlSink::state_dict() const {
  return {{"metrics_bytes", sinks::int_tensor(metrics_.committed())},
          {"steps_bytes", sinks::int_tensor(steps_.committed())}};
}

void JsonlSink::load_state_dict(const StateDict& state) {
  if (auto bytes = sinks::state_int(state, "metrics_bytes", "jsonl")) metrics_.truncate_to(*bytes);
  if (auto bytes = sinks::state_int(state, "steps_bytes", "jsonl")) steps_.truncate_to(*bytes);
}

}  // namespace loom::builtin
