#include "early_stopping.h"

#include <loom/library.h>

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Callback>(loom::builtin::EarlyStopping::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::EarlyStopping>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_callback_early_stopping", "1.0.0", register_features)
