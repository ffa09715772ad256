#include "resnet.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Model>(loom::builtin::ResNet::info(), [](const loom::CreateContext& c) {
    return std::make_shared<loom::builtin::ResNet>(c);
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_model_resnet", "1.0.0", register_features)
