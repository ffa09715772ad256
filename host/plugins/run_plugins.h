// Creates every plugin of a run in the kinds table's order, each behind its guard, before anything is
// written: a plugin whose create fails leaves nothing on disk. Shared by `loom run` and `loom check --deep`.
#pragma once

#include "config/resolve.h"
#include "plugins/run_context.h"
#include "loop/trainer.h"

#include <loom/cache.h>
#include <loom/self_training.h>

#include <memory>

namespace loom::host {

struct CreatedPlugins {
  RunPlugins run;
  std::shared_ptr<SelfTraining> driver;
  PluginRef driver_ref;
};

/// `communicator`: already created (it decides the device and threads first). `wrap_cache` false: the
/// cache plugin is created but does not build (check --deep writes nothing).
CreatedPlugins create_run_plugins(const Registry& registry, const ResolvedConfig& config, HostRunContext& context,
                                  std::shared_ptr<Communicator> communicator, bool wrap_cache);

}  // namespace loom::host
