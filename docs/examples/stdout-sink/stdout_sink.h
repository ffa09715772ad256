// A metric sink that writes each epoch record as one line of text — what the console shows, with every
// metric — to <run_dir>/<file>. It shows the rules every sink follows: no file opened in the factory,
// flush() before each checkpoint, and state that lets a resumed run cut the file back to what the
// checkpoint had committed, so each epoch appears exactly once however often the run is interrupted.
#pragma once

#include <loom/library.h>      // LOOM_PLUGIN_LIBRARY, Registrar, FeatureInfo, CreateContext
#include <loom/metric_sink.h>  // the one kind this library implements

#include <cstdint>
#include <filesystem>
#include <fstream>

namespace example {

class StdoutSink final : public loom::MetricSink {
 public:
  explicit StdoutSink(const loom::CreateContext& ctx);

  void write(const loom::MetricRecord& record) override;
  void flush() override;

  loom::StateDict state_dict() const override;
  void load_state_dict(const loom::StateDict& state) override;

  static loom::FeatureInfo info();

 private:
  void open();

  std::filesystem::path path_;  ///< <run_dir>/<file>; the directory does not exist yet in the factory
  std::ofstream out_;
  int64_t written_ = 0;     ///< bytes handed to out_ (this process's file size once flushed)
  int64_t committed_ = 0;   ///< bytes durable at the last flush(): what a checkpoint records
  bool resumed_ = false;
};

}  // namespace example
