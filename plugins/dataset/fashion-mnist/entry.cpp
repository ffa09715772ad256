#include "fashion_mnist.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Dataset>(loom::builtin::FashionMnist::info(), [](const loom::CreateContext& c) {
    return std::make_shared<loom::builtin::FashionMnist>(c);
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_dataset_fashion_mnist", "1.0.0", register_features)
