#include "nccl_communicator.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Communicator>(loom::builtin::NcclCommunicator::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::NcclCommunicator>(ctx);
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_communicator_nccl", "1.0.0", register_features)
