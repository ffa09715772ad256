// Every metric record goes to every [[metric_sink]] (the jsonl sink, metrics.jsonl, always first), each
// call guarded. Only rank 0 writes; the other ranks' hub is silent.
#pragma once

#include "state/checkpoint.h"
#include "state/providers.h"
#include "plugins/plugin_guard.h"

#include <loom/metric_sink.h>

#include <memory>
#include <string>
#include <vector>

namespace loom::host {

class MetricHub {
 public:
  /// `id`, `table`, `params`: as CallbackSet::add (keys "metric_sink/<name>", "metric_sink/<name>#2", "metric_sink/<id>").
  void add(PluginRef who, std::shared_ptr<MetricSink> sink, const std::string& id = {}, std::string table = {},
           std::string params = {});
  /// false on ranks other than 0: nothing is written there.
  void set_writing(bool writing) { writing_ = writing; }

  /// Stamps the wall time when the record has none.
  void write(MetricRecord record);
  /// Whether some sink wants a step record at optimizer step `step` (so the loop builds one only then).
  bool step_due(int64_t step) const;
  /// A step record, to the sinks whose interval divides record.step.
  void write_step(MetricRecord record);
  void flush();

  /// One state provider per sink (StatePhase::Run): its save flushes the sink, then takes its state_dict(),
  /// so the state describes what is durably written; its load makes the sink drop what it wrote after the
  /// checkpoint. Silent ranks save an empty entry and load nothing.
  std::vector<StateRegistry::Registration> register_state(StateRegistry& registry);

 private:
  struct Entry {
    PluginRef who;
    std::shared_ptr<MetricSink> sink;
    StateKey state;
    int64_t interval = 0;
  };
  std::vector<Entry> entries_;
  bool writing_ = true;
};

/// Seconds since the Unix epoch.
double unix_now();

}  // namespace loom::host
