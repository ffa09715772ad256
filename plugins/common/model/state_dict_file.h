// Loading weights saved by PyTorch — `torch.save(model.state_dict(), path)` — into a LibTorch module whose
// registered names equal the Python model's state_dict keys (e.g. torchvision's `layer1.0.conv1.weight`).
#pragma once

#include <torch/nn/module.h>

#include <filesystem>
#include <string>

namespace loom::model_common {

/// Copies every tensor of the state_dict in `file` into the parameter or buffer of `module` with the same
/// name. Strict, like PyTorch's load_state_dict(strict=True): a key the module lacks, a parameter or buffer
/// the file lacks, or a shape that differs is a std::invalid_argument naming the key, the shapes and the
/// file. One exception, as PyTorch's BatchNorm makes it: a missing `num_batches_tracked` is accepted
/// (state_dicts written before PyTorch 0.4.1 lack it) and keeps the module's value. `who` (e.g. "resnet")
/// prefixes every message.
void load_state_dict_file(torch::nn::Module& module, const std::filesystem::path& file, const std::string& who);

}  // namespace loom::model_common
