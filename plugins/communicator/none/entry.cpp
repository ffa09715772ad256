#include "none_communicator.h"

#include <loom/plugin.h>

namespace {
void register_features(loom::Registrar& r) {
  r.add<loom::Communicator>(loom::builtin::NoCommunicator::info(), [](const loom::CreateContext&) {
    return std::make_shared<loom::builtin::NoCommunicator>();
  });
}
}  // namespace

LOOM_PLUGIN_LIBRARY("loom_communicator_none", "1.0.0", register_features)
