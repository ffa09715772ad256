#include "target_batch.h"

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Accumulation>(loom::builtin::TargetBatchAccumulation::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::TargetBatchAccumulation>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_accumulation_target_batch", "1.0.0", register_features)
