// Creates every plugin of a run that the kinds' traits create at start (Creation::AtStart), in their order,
// each into a guarded slot, before anything is written: a plugin whose create fails leaves nothing on disk.
// Shared by `loom run` and `loom check --deep`.
#pragma once

#include "config/resolve.h"
#include "loop/trainer.h"
#include "plugins/run_context.h"
#include "plugins/slot.h"

#include <loom/plugin.h>

namespace loom::host {

/// One Slots<Interface> per kind, named like its TOML table (created.precision, created.callback, …),
/// generated from the SDK's kinds list; a kind of Cardinality::One holds exactly one slot.
struct PluginSlots {
#define LOOM_SLOTS_MEMBER(Interface, table) Slots<loom::Interface> table;
  LOOM_KINDS(LOOM_SLOTS_MEMBER)
#undef LOOM_SLOTS_MEMBER

  template <class I>
  Slots<I>& of() {
#define LOOM_SLOTS_OF(Interface, table) \
  if constexpr (std::is_same_v<I, loom::Interface>) return table;
    LOOM_KINDS(LOOM_SLOTS_OF)
#undef LOOM_SLOTS_OF
  }
};

struct CreatedPlugins {
  RunPlugins run;
  Slot<SelfTraining> driver;
};

/// `communicator`: already created (it decides the device and threads first; an empty slot for `loom
/// check --deep`). `wrap_cache` false: the cache plugin is created but does not build (check --deep
/// writes nothing).
CreatedPlugins create_run_plugins(const Registry& registry, const ResolvedConfig& config, HostRunContext& context,
                                  Slot<Communicator> communicator, bool wrap_cache);

}  // namespace loom::host
