#include "cnn.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Model>(loom::builtin::Cnn::info(), [](const loom::CreateContext& c) {
    return std::make_shared<loom::builtin::Cnn>(c);
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_model_cnn", "1.0.0", register_features)
