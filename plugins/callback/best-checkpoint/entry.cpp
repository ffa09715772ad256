#include "best_checkpoint.h"

#include <loom/library.h>

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Callback>(loom::builtin::BestCheckpoint::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::BestCheckpoint>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_callback_best_checkpoint", "1.0.0", register_features)
