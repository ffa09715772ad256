// Pieces shared by the built-in precision plugins (fp32, amp-bf16, amp-fp16). Header-only: each plugin
// includes it by relative path ("../common/precision_common.h"); nothing here is exported or linked.
// The general helpers (AutocastScope, clip_gradients, to_channels_last, …) are SDK: <loom/precision_helpers.h>.
//
//   max_grad_norm_param(), memory_format_param(), channels_last_removed_param()   common schema entries
//   apply_memory_format()   what memory_format means for a model on a device
#pragma once

#include <loom/plugin.h>
#include <loom/precision_helpers.h>

#include <ATen/autocast_mode.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace loom::builtin::precision_common {

inline ParamSpec max_grad_norm_param() {
  return ParamSpec::real("max_grad_norm", 0.0).at_least(0.0)
      .doc("clip the total L2 norm of the (unscaled) gradients to this value; 0 = no clipping");
}

inline ParamSpec memory_format_param() {
  return ParamSpec::choice("memory_format", "auto", {"auto", "channels_last", "contiguous"})
          .doc("layout of 4-D weights and inputs: channels_last converts the model's 4-D parameters and the host then "
               "converts each input batch once in the loader; auto = channels_last for convolutional models on the "
               "CPU, and on CUDA under reduced precision (tensor cores)");
}

/// The boolean channels_last of Loom <= 0.5, refused with the way over.
inline ParamSpec channels_last_removed_param() {
  return ParamSpec::removed("channels_last",
                         "write memory_format = \"channels_last\" instead (or leave the default \"auto\", which "
                         "picks channels_last for convolutional models where it is faster; \"contiguous\" opts out)");
}

/// Applies memory_format (`choice`) to `model` on `device`; `reduced` is true under bf16/fp16 autocast.
/// Returns whether the model is now channels_last (a model without 4-D parameters never is).
inline bool apply_memory_format(const std::string& choice, torch::nn::Module& model, c10::Device device, bool reduced) {
  if (choice == "contiguous") return false;
  bool convolutional = false;
  for (const auto& p : model.parameters()) convolutional = convolutional || p.dim() == 4;
  if (!convolutional) return false;
  // Measured (docs/benchmarks.md): on the CPU oneDNN's channels_last convolutions are ~2x faster for the
  // quickstart CNN; on CUDA cuDNN gains from it with tensor-core (bf16/fp16) kernels, not in float32.
  if (choice == "auto" && !(device.is_cpu() || reduced)) return false;
  loom::to_channels_last(model);
  return true;
}

using loom::AutocastScope;
using loom::clip_gradients;
using loom::optimizer_parameters;
using loom::require_autocast;
using loom::to_channels_last;

}  // namespace loom::builtin::precision_common
