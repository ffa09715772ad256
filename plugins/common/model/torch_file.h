// Reading the files Python's torch.save writes (the zip format, PyTorch >= 1.6) when they hold a dict of
// tensors — a state_dict. LibTorch's own torch::pickle_load cannot: its unpickler turns the
// collections.OrderedDict that state_dict() returns into None. This reads the archive with LibTorch's
// PyTorchStreamReader and unpickles data.pkl with the small subset of pickle protocol 2 that torch.save
// emits for dicts, tensors and plain values; anything else (a pickled nn.Module, an optimizer's state) is
// refused with a message naming what was found.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <string>

namespace loom::model_common {

/// The top-level dict of `file` (a dict or OrderedDict with string keys), each value a tensor (on the CPU,
/// with its saved dtype, shape and strides). Throws std::invalid_argument with `where` (e.g. "resnet: weights
/// file 'x.pt'") leading every message: not a torch.save zip, not a dict, a key that is not a string, a value
/// that is not a tensor.
std::map<std::string, at::Tensor> read_tensor_dict(const std::filesystem::path& file, const std::string& where);

}  // namespace loom::model_common
