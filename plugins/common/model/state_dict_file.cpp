#include "common/model/state_dict_file.h"

#include "common/model/torch_file.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <map>
#include <stdexcept>
#include <vector>

namespace loom::model_common {
namespace {

constexpr const char* kHowToSave = "save one in Python with torch.save(model.state_dict(), path)";

std::string shape_string(at::IntArrayRef shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

bool is_batch_counter(const std::string& key) {
  static const std::string suffix = "num_batches_tracked";
  return key.size() >= suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "'a', 'b', 'c' and 2 more": enough to see the pattern (a renamed layer, a wrong depth) without a wall of keys.
std::string key_list(const std::vector<std::string>& keys) {
  constexpr size_t kShown = 5;
  std::string out;
  for (size_t i = 0; i < keys.size() && i < kShown; ++i) out += (i ? ", '" : "'") + keys[i] + "'";
  if (keys.size() > kShown) out += " and " + std::to_string(keys.size() - kShown) + " more";
  return out;
}

}  // namespace

void load_state_dict_file(torch::nn::Module& module, const std::filesystem::path& file, const std::string& who) {
  const std::string where = who + ": weights file '" + file.string() + "'";
  std::map<std::string, at::Tensor> source;
  try {
    source = read_tensor_dict(file, where);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(e.what()) + "; " + kHowToSave);
  }

  std::map<std::string, at::Tensor> target;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) target.emplace(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true)) target.emplace(item.key(), item.value());

  std::vector<std::string> unexpected, missing;
  for (const auto& [key, tensor] : source)
    if (!target.count(key)) unexpected.push_back(key);
  for (const auto& [key, tensor] : target)
    if (!source.count(key) && !is_batch_counter(key)) missing.push_back(key);
  if (!unexpected.empty() || !missing.empty()) {
    std::string message = where + " does not match the model:";
    if (!missing.empty()) message += " missing key" + std::string(missing.size() > 1 ? "s " : " ") + key_list(missing) + ";";
    if (!unexpected.empty())
      message += " unexpected key" + std::string(unexpected.size() > 1 ? "s " : " ") + key_list(unexpected) + ";";
    throw std::invalid_argument(message + " were the weights saved from the same architecture (depth, stem, widths)?");
  }
  for (const auto& [key, tensor] : source) {
    const at::Tensor& into = target.at(key);
    if (tensor.sizes() != into.sizes())
      throw std::invalid_argument(where + ": '" + key + "' has shape " + shape_string(tensor.sizes()) +
                                  " in the file but " + shape_string(into.sizes()) + " in the model");
  }
  // Everything is checked before anything is copied: a failed load leaves the model as it was.
  torch::NoGradGuard no_grad;
  for (const auto& [key, tensor] : source) target.at(key).copy_(tensor);
}

}  // namespace loom::model_common
