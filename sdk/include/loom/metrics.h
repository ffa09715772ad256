// Metric values and records: what the host and plugins report, and what every metric sink receives.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>

namespace loom {

/// One reported value. std::monostate is "no value" (JSON null), e.g. val_loss of a run without a
/// validation split.
using MetricValue = std::variant<std::monostate, int64_t, double, std::string>;

/// The value as a number, when it is one (int64 or double).
inline std::optional<double> as_number(const MetricValue& v) {
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  return std::nullopt;
}

/// What a record describes.
enum class RecordKind {
  Epoch,  ///< one per (stage, epoch), after validation: train/val metrics, lr, throughput, plugin metrics
  Step,   ///< every MetricSink::step_interval() optimizer steps: train_loss, lr, grad_norm
  Event,  ///< outside the epoch loop: dataset counters ("setup"), a self-training round's summary, the test
};

inline constexpr const char* to_string(RecordKind k) {
  switch (k) {
    case RecordKind::Epoch: return "epoch";
    case RecordKind::Step: return "step";
    case RecordKind::Event: return "event";
  }
  return "?";
}

struct MetricRecord {
  RecordKind kind = RecordKind::Epoch;
  std::string stage;        ///< "supervised", "round1/student", …; "setup" and "test" for those events
  int64_t round = 0;        ///< self-training round (0: the supervised/teacher stage)
  int64_t epoch = 0;        ///< 1-based epoch of the stage (Epoch, Step); 0 for events
  int64_t step = 0;         ///< optimizer steps done in the stage (at the epoch's end for Epoch records)
  double wall_time = 0.0;   ///< seconds since the Unix epoch, when the record was made
  std::map<std::string, MetricValue> values;

  std::optional<double> number(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? std::nullopt : as_number(it->second);
  }
};

}  // namespace loom
