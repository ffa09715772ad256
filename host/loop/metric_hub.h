// Every metric record goes to every [[metric_sink]] (the jsonl sink, metrics.jsonl, always first), each
// call guarded. Only rank 0 writes; the other ranks' hub is silent.
#pragma once

#include "state/checkpoint.h"
#include "plugins/plugin_guard.h"

#include <loom/metric_sink.h>

#include <memory>
#include <string>
#include <vector>

namespace loom::host {

class MetricHub {
 public:
  void add(PluginRef who, std::shared_ptr<MetricSink> sink);
  /// false on ranks other than 0: nothing is written there.
  void set_writing(bool writing) { writing_ = writing; }

  /// Stamps the wall time when the record has none.
  void write(MetricRecord record);
  /// Whether some sink wants a step record at optimizer step `step` (so the loop builds one only then).
  bool step_due(int64_t step) const;
  /// A step record, to the sinks whose interval divides record.step.
  void write_step(MetricRecord record);
  void flush();

  /// One checkpoint entry per sink: "metric_sink/<index>:<name>" (flush() first).
  void save_state(CheckpointWriter& writer) const;
  void load_state(const CheckpointReader& reader);

 private:
  struct Entry {
    PluginRef who;
    std::shared_ptr<MetricSink> sink;
    std::string key;
    int64_t interval = 0;
  };
  std::vector<Entry> entries_;
  bool writing_ = true;
};

/// Seconds since the Unix epoch.
double unix_now();

}  // namespace loom::host
