#include "csv_sink.h"

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::MetricSink>(loom::builtin::CsvSink::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::CsvSink>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_metric_sink_csv", "1.0.0", register_features)
