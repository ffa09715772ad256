// mixup: the batch blended with itself rolled by one sample — torchvision.transforms.v2.MixUp:
// x ← λ·x + (1-λ)·x.roll(1), targets ← λ·onehot(y) + (1-λ)·onehot(y).roll(1), λ ~ Beta(α, α) once
// per batch. Targets become class probabilities [B, C] (already soft targets are mixed as they are);
// per-sample weights, when the batch has them, are mixed the same way.
//
// Draws from the batch's generator, in order (augmentation/common/mixing.h):
//   1. u = rand({1}, double): the batch is mixed iff u < p;
//   2. g = _standard_gamma(full({2}, α, double)): λ = g[0] / (g[0] + g[1]).
// Both are drawn for every batch, mixed or not. A batch that is not mixed keeps its inputs; its targets
// still become one-hot probabilities (the loss sees one kind of target per pipeline).
#include "augmentation/common/batch_util.h"
#include "augmentation/common/mixing.h"

#include <loom/library.h>

#include <ATen/ATen.h>

namespace loom::augmentation {
namespace {

class MixUp final : public Augmentation {
 public:
  static FeatureInfo info() {
    return {
        .name = "mixup",
        .version = "1.0.0",
        .summary = "blends each sample with its neighbour in the batch, targets too (torchvision v2 MixUp)",
        .params = {
            ParamSpec::real("alpha", 0.2).at_least(1e-6).doc("λ ~ Beta(alpha, alpha), one λ per batch"),
            ParamSpec::real("p", 1.0).range(0.0, 1.0)
                .doc("probability that a batch is mixed (else its targets only become one-hot probabilities)"),
        },
    };
  }

  explicit MixUp(const CreateContext& ctx) : alpha_(ctx.params.real("alpha")), p_(ctx.params.real("p")) {
    const SampleSpec spec = dataset_spec(ctx, "mixup");
    if (!c10::isFloatingType(spec.dtype))
      throw std::invalid_argument(std::string("mixup: needs floating-point samples; the dataset's are ") +
                                  c10::toString(spec.dtype));
    classes_ = spec.num_classes;
  }

  void apply(AugmentBatch& batch, at::Generator& generator) const override {
    const bool mixed = draw_batch_chosen(p_, generator);
    const double lam = draw_beta(alpha_, generator);
    if (!batch.x.is_floating_point())
      throw std::invalid_argument(std::string("mixup: needs floating-point inputs, got ") +
                                  c10::toString(batch.x.scalar_type()));
    if (!mixed || batch.x.size(0) == 0) return mix_targets(batch, 1.0, classes_, "mixup");
    mix_targets(batch, lam, classes_, "mixup");
    batch.x = mix_with_rolled(batch.x, lam);
  }

 private:
  double alpha_;
  double p_;
  int64_t classes_ = 0;
};

void register_features(Registrar& r) {
  r.add<Augmentation>(MixUp::info(), [](const CreateContext& c) { return std::make_shared<MixUp>(c); });
}

}  // namespace
}  // namespace loom::augmentation

LOOM_PLUGIN_LIBRARY("loom_augmentation_mixup", "1.0.0", loom::augmentation::register_features)
