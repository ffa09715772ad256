#include "none_self_training.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::SelfTraining>(loom::builtin::Supervised::info(), [](const loom::CreateContext&) {
    return std::make_shared<loom::builtin::Supervised>();
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_self_training_none", "1.0.0", register_features)
