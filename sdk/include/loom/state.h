// Checkpointable state of a plugin: named tensors (scalars as 0-dim tensors). The host stores them in the
// run's checkpoint under the plugin's kind and restores them on --resume, before training continues.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace loom {
using StateDict = std::map<std::string, at::Tensor>;
}  // namespace loom
