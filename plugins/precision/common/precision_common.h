// Pieces shared by the built-in precision plugins (fp32, amp-bf16, amp-fp16). Header-only: each plugin
// includes it by relative path ("../common/precision_common.h"); nothing here is exported or linked.
// The general helpers (AutocastScope, clip_gradients, to_channels_last, …) are SDK: <loom/precision_helpers.h>.
//
//   max_grad_norm_param(), channels_last_param()   the common schema entries, so the docs match
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

inline ParamSpec channels_last_param() {
  return ParamSpec::boolean("channels_last", false)
      .doc("convert the model's 4-D parameters (conv weights) to the channels_last memory format");
}

using loom::AutocastScope;
using loom::clip_gradients;
using loom::optimizer_parameters;
using loom::require_autocast;
using loom::to_channels_last;

}  // namespace loom::builtin::precision_common
