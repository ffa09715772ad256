#include "ema.h"

#include <loom/library.h>

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Callback>(loom::builtin::Ema::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::Ema>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_callback_ema", "1.0.0", register_features)
