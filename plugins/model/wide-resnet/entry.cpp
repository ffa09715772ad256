#include "wide_resnet.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Model>(loom::builtin::WideResNet::info(), [](const loom::CreateContext& c) {
    return std::make_shared<loom::builtin::WideResNet>(c);
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_model_wide_resnet", "1.0.0", register_features)
