#include "fp32.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Precision>(loom::builtin::Fp32::info(),
                         [](const loom::CreateContext& c) { return std::make_shared<loom::builtin::Fp32>(c); });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_precision_fp32", "1.0.0", register_features)
