// The library's one entry point. lr_logger.h includes <loom/library.h> (LOOM_PLUGIN_LIBRARY) and
// <loom/callback.h>, the only interface this library implements — not <loom/plugin.h>, which pulls in
// every kind.
#include "lr_logger.h"

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Callback>(example::LrLogger::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<example::LrLogger>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_callback_lr_logger", "1.0.0", register_features)
