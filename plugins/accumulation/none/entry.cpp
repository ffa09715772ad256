#include "none_accumulation.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Accumulation>(loom::builtin::NoAccumulation::info(), [](const loom::CreateContext&) {
    return std::make_shared<loom::builtin::NoAccumulation>();
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_accumulation_none", "1.0.0", register_features)
