// An augmentation op in one file: adds N(0, std²) noise to each sample with probability p. It follows the
// op contract of <loom/augmentation.h>: batched tensor ops on the batch's device, every random number from
// the generator the host hands it (drawn on the CPU, then moved), one decision per sample, and new tensors
// instead of writes into the inputs (they may be views of a cache).
//
//   [[augmentation]]
//   plugin = "gaussian-noise"
//   std = 0.1
//   p = 0.5
#include <loom/augmentation.h>
#include <loom/library.h>

#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>

#include <vector>

namespace example {

class GaussianNoise final : public loom::Augmentation {
 public:
  GaussianNoise(double std, double p) : std_(std), p_(p) {}

  void apply(loom::AugmentBatch& batch, at::Generator& generator) const override {
    const at::Tensor& x = batch.x;
    const auto cpu_float = at::TensorOptions().dtype(at::kFloat).device(at::kCPU);
    // Per sample: 1 where this sample gets noise. Tensor methods (lt, mul, add) need no extra header;
    // the operators (x < p) would need <ATen/TensorOperators.h>.
    std::vector<int64_t> per_sample(static_cast<size_t>(x.dim()), 1);
    per_sample[0] = x.size(0);
    const at::Tensor chosen = at::rand({x.size(0)}, generator, cpu_float).lt(p_).to(at::kFloat).view(per_sample);
    const at::Tensor noise = at::randn(x.sizes(), generator, cpu_float).mul_(chosen).mul_(std_);
    batch.x = x.add(noise.to(x.device(), x.scalar_type()));
  }

  static loom::FeatureInfo info() {
    return {.name = "gaussian-noise",
            .version = "1.0.0",
            .summary = "adds Gaussian noise to each sample with probability p (an example augmentation plugin)",
            .params = {loom::ParamSpec::real("std", 0.1).at_least(0.0).doc("standard deviation of the noise"),
                       loom::ParamSpec::real("p", 0.5).range(0.0, 1.0).doc("probability per sample")}};
  }

 private:
  double std_, p_;
};

}  // namespace example

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Augmentation>(example::GaussianNoise::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<example::GaussianNoise>(ctx.params.real("std"), ctx.params.real("p"));
  });
}

LOOM_PLUGIN_LIBRARY("loom_augmentation_gaussian_noise", "1.0.0", register_features)
