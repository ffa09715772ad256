// Pieces shared by the built-in precision plugins (fp32, amp-bf16, amp-fp16). Header-only: each plugin
// includes it by relative path ("../common/precision_common.h"); nothing here is exported or linked.
// The general helpers (AutocastScope, clip_gradients, to_channels_last, …) are SDK: <loom/precision_helpers.h>.
//
//   max_grad_norm_param(), memory_format_param(), channels_last_removed_param()   common schema entries
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

/// The boolean channels_last of Loom <= 0.5, refused with the way over.
inline ParamSpec channels_last_removed_param() {
  return ParamSpec::removed("channels_last",
                         "write memory_format = \"channels_last\" instead (or leave the default \"auto\", which "
                         "picks channels_last for convolutional models where it is faster; \"contiguous\" opts out)");
}

using loom::apply_memory_format;
using loom::memory_format_param;
using loom::AutocastScope;
using loom::clip_gradients;
using loom::optimizer_parameters;
using loom::require_autocast;
using loom::to_channels_last;

}  // namespace loom::builtin::precision_common
