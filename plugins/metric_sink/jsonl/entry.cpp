#include "jsonl_sink.h"

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::MetricSink>(loom::builtin::JsonlSink::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::JsonlSink>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_metric_sink_jsonl", "1.0.0", register_features)
