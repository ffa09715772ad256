// The training loss, shared by the loop, the micro-batch probe and evaluation (and tested against
// PyTorch's cross_entropy in tests/test_pseudo_label.cpp).
#pragma once

#include <ATen/core/Tensor.h>

namespace loom::host {

/// Per-sample loss in float32, [B]: cross-entropy for int64 class targets [B]; for float targets [B, C]
/// (soft labels, probabilities per class) the soft cross-entropy -Σ_c t_c log softmax(z)_c, which is
/// torch.nn.functional.cross_entropy with probability targets. Per-sample weights are applied by the caller.
at::Tensor per_sample_loss(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace loom::host
