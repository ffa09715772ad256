#include "device_cache.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Cache>(loom::builtin::DeviceCache::info(),
                     [](const loom::CreateContext& c) { return std::make_shared<loom::builtin::DeviceCache>(c); });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_cache_device", "1.0.0", register_features)
