#include "mpi_communicator.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Communicator>(loom::builtin::MpiCommunicator::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<loom::builtin::MpiCommunicator>(ctx);
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_communicator_mpi", "1.0.0", register_features)
