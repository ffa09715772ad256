// The state tensors of the file-writing sinks: byte counts as 0-dim int64 tensors, names and header lines
// as uint8 tensors of their bytes. Readers check dtype and shape, so a checkpoint written by some other
// sink (or a damaged one) fails with the key's name instead of reinterpreting memory.
#pragma once

#include <loom/state.h>

#include <cstdint>
#include <optional>
#include <string>

namespace loom::sinks {

at::Tensor int_tensor(int64_t value);
at::Tensor bytes_tensor(const std::string& bytes);

/// The value under `key`, or nullopt when the state lacks it (a checkpoint from before this sink wrote).
/// `sink` names the sink in errors: "metric sink 'jsonl': state 'metrics_bytes' ...".
std::optional<int64_t> state_int(const StateDict& state, const std::string& key, const std::string& sink);
std::optional<std::string> state_bytes(const StateDict& state, const std::string& key, const std::string& sink);

}  // namespace loom::sinks
