#include "fixed.h"

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Accumulation>(loom::builtin::FixedAccumulation::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::FixedAccumulation>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_accumulation_fixed", "1.0.0", register_features)
