#include "image_folder.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Dataset>(loom::builtin::ImageFolder::info(), [](const loom::CreateContext& c) {
    return std::make_shared<loom::builtin::ImageFolder>(c);
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_dataset_image_folder", "1.0.0", register_features)
