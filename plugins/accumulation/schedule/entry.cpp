#include "schedule.h"

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Accumulation>(loom::builtin::ScheduledAccumulation::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::ScheduledAccumulation>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_accumulation_schedule", "1.0.0", register_features)
