#include "none_cache.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Cache>(loom::builtin::NoCache::info(),
                     [](const loom::CreateContext&) { return std::make_shared<loom::builtin::NoCache>(); });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_cache_none", "1.0.0", register_features)
