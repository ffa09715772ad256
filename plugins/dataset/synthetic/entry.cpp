#include "synthetic.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Dataset>(loom::builtin::Synthetic::info(), [](const loom::CreateContext& c) {
    return std::make_shared<loom::builtin::Synthetic>(c);
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_dataset_synthetic", "1.0.0", register_features)
