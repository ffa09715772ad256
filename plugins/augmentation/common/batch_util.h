// Small pieces every built-in augmentation op needs: per-sample decisions drawn from the batch's
// generator, checks of the batch's shape, the value of a black pixel after the dataset's normalisation.
#pragma once

#include <loom/augmentation.h>
#include <loom/context.h>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace loom::augmentation {

/// bool [n] on `device`: sample i is chosen with probability p (one uniform draw per sample from
/// `generator`, on the CPU, even when p is 0 or 1 — so the stream's position does not depend on p).
at::Tensor sample_mask(int64_t n, double p, at::Generator& generator, const c10::Device& device);

/// Throws std::invalid_argument unless x is an image batch [N, C, H, W]; `op` names the op in the message.
void require_images(const at::Tensor& x, const std::string& op);

/// Per channel, the value a black (0) pixel has in the dataset's samples: pixel_shift where the dataset
/// declares a pixel affine, else 0.
std::vector<double> black_values(const SampleSpec& spec, int64_t channels);

/// A [1, C, 1, 1] tensor of per-channel values, with x's dtype and device.
at::Tensor per_channel(const std::vector<double>& values, const at::Tensor& like);

/// The dataset's spec, for an op's factory: throws std::logic_error when created without a dataset.
SampleSpec dataset_spec(const CreateContext& ctx, const std::string& op);

}  // namespace loom::augmentation
