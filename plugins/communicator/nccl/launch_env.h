// Where a process of an nccl run stands, from its launcher's environment variables: torchrun's (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or, for the first four, mpirun's
// (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_SIZE).
// Free of CUDA and NCCL, so the tests check it on any machine.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace loom::builtin::nccl_launch {

struct Launch {
  int rank = 0, world_size = 1, local_rank = 0, local_size = 1;
  std::string master_addr;
  uint16_t master_port = 0;
  /// torchrun's agent already serves the store at MASTER_ADDR:MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE),
  /// so rank 0 connects to it instead of starting its own.
  bool agent_store = false;
  /// Keys of this launch in the store; differs per torchrun restart (TORCHELASTIC_RESTART_COUNT).
  std::string key_prefix = "loom/nccl/";
};

/// Looks a variable up; nullptr when unset. The plugin passes std::getenv.
using Lookup = std::function<const char*(const char*)>;

/// Reads and checks the variables; throws std::runtime_error naming the missing or bad variable, with a
/// launch example.
Launch read_launch(const Lookup& env);

}  // namespace loom::builtin::nccl_launch
