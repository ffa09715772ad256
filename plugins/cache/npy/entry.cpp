#include "npy_cache.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Cache>(loom::builtin::NpyCache::info(),
                     [](const loom::CreateContext& c) { return std::make_shared<loom::builtin::NpyCache>(c); });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_cache_npy", "1.0.0", register_features)
