// The library's one entry point. stdout_sink.h includes <loom/library.h> (LOOM_PLUGIN_LIBRARY) and
// <loom/metric_sink.h>, the only interface this library implements.
#include "stdout_sink.h"

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::MetricSink>(example::StdoutSink::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<example::StdoutSink>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_metric_sink_stdout_sink", "1.0.0", register_features)
