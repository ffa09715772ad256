// `jsonl`: the run's metrics.jsonl, one JSON object per epoch and event record; the host always adds it
// first. With every_n_steps > 0, step records go to steps.jsonl beside it.
#pragma once

#include <loom/io.h>

#include <loom/library.h>
#include <loom/metric_sink.h>

namespace loom::builtin {

class JsonlSink final : public MetricSink {
 public:
  static FeatureInfo info();
  explicit JsonlSink(const CreateContext& ctx);

  int64_t step_interval() const override { return every_n_steps_; }
  void write(const MetricRecord& record) override;
  void flush() override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  int64_t every_n_steps_;
  io::AppendFile metrics_, steps_;
};

}  // namespace loom::builtin
