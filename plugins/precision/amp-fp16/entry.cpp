#include "amp_fp16.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Precision>(loom::builtin::AmpFp16::info(),
                         [](const loom::CreateContext& c) { return std::make_shared<loom::builtin::AmpFp16>(c); });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_precision_amp_fp16", "1.0.0", register_features)
