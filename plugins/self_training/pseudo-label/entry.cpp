#include "pseudo_label.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::SelfTraining>(loom::pseudo_label::PseudoLabel::info(), [](const loom::CreateContext& c) {
    return std::make_shared<loom::pseudo_label::PseudoLabel>(c);
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_self_training_pseudo_label", "1.0.0", register_features)
