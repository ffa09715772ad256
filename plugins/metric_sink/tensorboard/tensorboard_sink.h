// `tensorboard`: the run's metrics as TensorBoard scalars, in one event file under <run_dir>/<dir>.
// Tags are grouped by stage: an epoch record's values become `<stage>/<key>` at step = epoch, a step
// record's `<stage>/step/<key>` at step = optimizer step, an event's `<stage>/<key>` at step = round.
#pragma once

#include <loom/io.h>

#include <loom/library.h>
#include <loom/metric_sink.h>

#include <filesystem>

namespace loom::builtin {

class TensorBoardSink final : public MetricSink {
 public:
  static FeatureInfo info();
  explicit TensorBoardSink(const CreateContext& ctx);

  int64_t step_interval() const override { return every_n_steps_; }
  void write(const MetricRecord& record) override;
  void flush() override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  /// Names and opens a new event file, or reopens the one a resumed run continues.
  void open();

  std::filesystem::path dir_;
  int64_t every_n_steps_;
  io::AppendFile file_{{}};
  std::string file_name_;   ///< empty until the first open (or a resume) names the file
};

}  // namespace loom::builtin
