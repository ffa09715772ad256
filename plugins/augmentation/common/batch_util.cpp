#include "augmentation/common/batch_util.h"

#include <loom/context.h>

#include <ATen/ATen.h>

#include <stdexcept>

namespace loom::augmentation {

at::Tensor sample_mask(int64_t n, double p, at::Generator& generator, const c10::Device& device) {
  return at::rand({n}, generator, at::TensorOptions().dtype(at::kDouble)).lt(p).to(device);
}

void require_images(const at::Tensor& x, const std::string& op) {
  if (x.dim() != 4)
    throw std::invalid_argument(op + ": needs image batches [N, C, H, W], got " + std::to_string(x.dim()) +
                                " dimensions (the dataset's samples are not images)");
}

std::vector<double> black_values(const SampleSpec& spec, int64_t channels) {
  if (has_pixel_affine(spec) && static_cast<int64_t>(spec.pixel_shift.size()) == channels) return spec.pixel_shift;
  return std::vector<double>(static_cast<size_t>(channels), 0.0);
}

at::Tensor per_channel(const std::vector<double>& values, const at::Tensor& like) {
  return at::tensor(values, at::TensorOptions().dtype(at::kDouble))
      .to(like.options())
      .view({1, static_cast<int64_t>(values.size()), 1, 1});
}

SampleSpec dataset_spec(const CreateContext& ctx, const std::string& op) {
  if (!ctx.dataset) throw std::logic_error(op + ": created without a dataset");
  return ctx.dataset->spec();
}

}  // namespace loom::augmentation
