// The communicator is created first, before the run directory: rank and local size decide the device,
// the threads and which process writes. Used by `loom run`.
#pragma once

#include "cli/log.h"
#include "config/resolve.h"
#include "plugins/registry.h"
#include "plugins/slot.h"

#include <loom/communicator.h>

#include <c10/core/Device.h>

#include <cstdint>

namespace loom::host {

/// The communicator and where this process stands in the world it opens.
struct World {
  Slot<Communicator> communicator;
  int rank = 0, size = 1;
  bool primary() const { return rank == 0; }
};

/// Creates the config's communicator and asks it for rank and world size.
World boot_communicator(const ResolvedConfig& config, const Registry& registry, HostLogger& logger, uint64_t seed);

/// The run's device given the communicator: CUDA device local_rank for a CUDA communicator; a CPU
/// communicator refuses a CUDA run (its collectives take CPU tensors).
c10::Device distributed_device(c10::Device requested, const Slot<Communicator>& comm, const ResolvedConfig& config);

}  // namespace loom::host
