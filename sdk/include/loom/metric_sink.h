// A metric sink receives every record the run reports: the host's per-epoch and per-step records, the
// events plugins report (a self-training round's summary), and the final test. Sinks run in file order
// ([[metric_sink]] tables); the built-in `jsonl` sink (metrics.jsonl) is always first.
//
//   [[metric_sink]]
//   plugin = "tensorboard"
//   every_n_steps = 50
//
// Rules for a sink:
//   - Create no file in the factory: the run directory does not exist yet when plugins are created (a
//     config rejected later must leave nothing on disk). Open files on the first write() or flush().
//   - Only rank 0 of a data-parallel run gets records; other ranks never call a sink.
//   - Resume: state_dict() is saved in every checkpoint after flush(); a resumed run calls
//     load_state_dict() before the first write(). A sink that appends to files records how much it had
//     committed and truncates back to it there, so every record is written exactly once whatever the
//     number of interruptions.
#pragma once

#include <loom/kinds.h>
#include <loom/metrics.h>
#include <loom/state.h>

#include <cstdint>

namespace loom {

class MetricSink {
 public:
  virtual ~MetricSink() = default;

  /// Step records arrive every step_interval() optimizer steps of a stage (0: none). The host builds a
  /// step record only for steps some sink asked for, so a large interval costs nothing in between.
  virtual int64_t step_interval() const { return 0; }
  virtual void write(const MetricRecord& record) = 0;
  /// Makes every record written so far durable; called before each checkpoint and at the end of the run.
  virtual void flush() {}

  virtual StateDict state_dict() const { return {}; }
  virtual void load_state_dict(const StateDict& state) { (void)state; }
};

/// The metric sink kind: every record to every sink; jsonl always first.
template <>
struct KindTraits<MetricSink> : KindTraitsBase {
  static constexpr Kind kind = Kind::MetricSink;
  static constexpr Cardinality cardinality = Cardinality::Many;
  static constexpr std::string_view always = "jsonl";
  static constexpr int order = 100;
};

}  // namespace loom
