// The smallest metric sink plugin: prints each record's stage and number of values.
#include <loom/library.h>
#include <loom/metric_sink.h>

#include <cstdio>

namespace {

class Print final : public loom::MetricSink {
 public:
  void write(const loom::MetricRecord& record) override {
    std::printf("%s: %zu values\n", record.stage.c_str(), record.values.size());
  }
};

void register_features(loom::Registrar& r) {
  r.add<loom::MetricSink>({.name = "print", .version = "1.0.0", .summary = "prints records"},
                          [](const loom::CreateContext&) { return std::make_shared<Print>(); });
}

}  // namespace

LOOM_PLUGIN_LIBRARY("bench_metric_sink", "1.0.0", register_features)
