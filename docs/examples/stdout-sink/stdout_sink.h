// A metric sink that writes each epoch record as one line of text — what the console shows, with every
// metric — to <run_dir>/<file>. It shows the rules every sink follows: no file opened in the factory,
// flush() before each checkpoint, and state that lets a resumed run cut the file back to what the
// checkpoint had committed, so each epoch appears exactly once however often the run is interrupted.
#pragma once

#include <loom/library.h>      // LOOM_PLUGIN_LIBRARY, Registrar, FeatureInfo, CreateContext
#include <loom/io.h>           // loom::io::AppendFile (library Loom::io)
#include <loom/metric_sink.h>  // the one kind this library implements

#include <cstdint>

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

  loom::io::AppendFile file_{""};  ///< <run_dir>/<file>, opened on first use (the directory does not exist in the factory)
  int64_t committed_ = 0;          ///< bytes durable at the last flush(): what a checkpoint records
};

}  // namespace example
