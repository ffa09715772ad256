// The training loss ([loss] table), shared by the loop, the micro-batch probe and evaluation (tested
// against PyTorch's cross_entropy in tests/test_pseudo_label.cpp and tests/test_loss.cpp).
#pragma once

#include <ATen/core/Tensor.h>

namespace loom::host {

/// Per-sample loss in float32, [B]: cross-entropy for int64 class targets [B]; for float targets [B, C]
/// (soft labels: mixup/CutMix, soft pseudo labels; probabilities per class) the soft cross-entropy
/// -Σ_c t_c log softmax(z)_c. `label_smoothing` s mixes every target with the uniform distribution,
/// (1 - s)·t + s/C, exactly as torch.nn.functional.cross_entropy(..., label_smoothing=s) does for both
/// kinds of target. Per-sample weights are applied by the caller.
at::Tensor per_sample_loss(const at::Tensor& logits, const at::Tensor& targets, double label_smoothing = 0.0);

/// The class each target names: itself for int64 [B], the most probable class for soft targets [B, C]
/// (what train_accuracy counts against).
at::Tensor target_classes(const at::Tensor& targets);

}  // namespace loom::host
