#include "launch_env.h"

#include <charconv>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace loom::builtin::nccl_launch {

namespace {

const char* const kLaunchExample =
    "Launch one process per GPU with torchrun:\n"
    "  torchrun --nproc-per-node 4 --no-python loom run CONFIG                      (one host, 4 GPUs)\n"
    "  torchrun --nnodes 2 --node-rank N --nproc-per-node 4 --master-addr HOST0 --master-port 29500 \\\n"
    "           --no-python loom run CONFIG                                          (on each of 2 hosts)\n"
    "or set the variables yourself (one GPU: RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 "
    "MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 loom run CONFIG),\n"
    "or with mpirun (it sets the ranks): mpirun -np 8 --hostfile HOSTS -x MASTER_ADDR=HOST0 -x MASTER_PORT=29500 "
    "loom run CONFIG";

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("nccl: " + what + ". " + kLaunchExample);
}

/// The first of `names` that is set, as (name, value).
std::optional<std::pair<std::string, std::string>> first_set(const Lookup& env, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (const char* v = env(n); v && *v) return std::make_pair(std::string(n), std::string(v));
  return std::nullopt;
}

int64_t integer(const std::pair<std::string, std::string>& var, int64_t lo, int64_t hi) {
  int64_t v = 0;
  const std::string_view s = var.second;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
    fail(var.first + "=" + var.second + " is not an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

/// A required rank-like variable: the torchrun name, or mpirun's.
std::pair<std::string, std::string> required(const Lookup& env, const char* torchrun, const char* mpirun) {
  auto v = first_set(env, {torchrun, mpirun});
  if (!v) fail(std::string("environment variable ") + torchrun + " is not set (nor mpirun's " + mpirun + ")");
  return *v;
}

}  // namespace

Launch read_launch(const Lookup& env) {
  constexpr int64_t kMaxRanks = 1 << 20;
  Launch l;
  const auto world = required(env, "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE");
  l.world_size = static_cast<int>(integer(world, 1, kMaxRanks));
  const auto rank = required(env, "RANK", "OMPI_COMM_WORLD_RANK");
  l.rank = static_cast<int>(integer(rank, 0, l.world_size - 1));
  const auto local_size = required(env, "LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE");
  l.local_size = static_cast<int>(integer(local_size, 1, l.world_size));
  const auto local_rank = required(env, "LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK");
  l.local_rank = static_cast<int>(integer(local_rank, 0, l.local_size - 1));

  const auto addr = first_set(env, {"MASTER_ADDR"});
  if (!addr) fail("environment variable MASTER_ADDR is not set (the host of rank 0, where the ranks meet)");
  l.master_addr = addr->second;
  const auto port = first_set(env, {"MASTER_PORT"});
  if (!port) fail("environment variable MASTER_PORT is not set (a free TCP port on MASTER_ADDR, e.g. 29500)");
  l.master_port = static_cast<uint16_t>(integer(*port, 1, 65535));

  const auto agent = first_set(env, {"TORCHELASTIC_USE_AGENT_STORE"});
  l.agent_store = agent && (agent->second == "True" || agent->second == "true" || agent->second == "1");
  if (const auto restart = first_set(env, {"TORCHELASTIC_RESTART_COUNT"})) l.key_prefix += restart->second + "/";
  return l;
}

}  // namespace loom::builtin::nccl_launch
