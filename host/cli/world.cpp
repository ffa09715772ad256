#include "cli/world.h"

#include "plugins/run_context.h"

#include <stdexcept>
#include <string>

namespace loom::host {

namespace fs = std::filesystem;

World boot_communicator(const ResolvedConfig& config, const Registry& registry, HostLogger& logger, uint64_t seed) {
  HostRunContext boot(logger, c10::Device(c10::kCPU), seed, 1, fs::path(), config.run.str("cache_dir"));
  const PluginChoice& choice = config.one(Kind::Communicator);
  World world;
  world.communicator = Slot<Communicator>(registry.create<Communicator>(*choice.feature, {choice.params, boot, nullptr}),
                                          PluginRef::of(*choice.feature));
  world.rank = world.communicator.call<&Communicator::rank>();
  world.size = world.communicator.call<&Communicator::world_size>();
  return world;
}


c10::Device distributed_device(c10::Device requested, const Slot<Communicator>& comm, const ResolvedConfig& config) {
  if (comm.call<&Communicator::world_size>() == 1 && config.one(Kind::Communicator).feature->info.name == "none") return requested;
  const std::string name = config.one(Kind::Communicator).feature->info.name;
  if (comm.call<&Communicator::device_type>() == c10::DeviceType::CUDA) {
    if (!requested.is_cuda())
      throw std::runtime_error("[communicator] plugin = \"" + name + "\" all-reduces CUDA tensors, but [run] device is " +
                               requested.str() + "; set device = \"cuda\" (or \"auto\" on a GPU machine), or use the mpi communicator on CPUs");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(comm.call<&Communicator::local_rank>()));
  }
  if (!requested.is_cpu())
    throw std::runtime_error("[communicator] plugin = \"" + name + "\" all-reduces CPU tensors, but [run] device is " +
                             requested.str() + "; set device = \"cpu\", or use [communicator] plugin = \"nccl\" for GPUs");
  return requested;
}


}  // namespace loom::host
