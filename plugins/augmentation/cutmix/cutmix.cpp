// cutmix: a box of every image replaced by the same box of its neighbour in the batch (the batch rolled
// by one sample) — torchvision.transforms.v2.CutMix. λ ~ Beta(α, α) once per batch sets the box's size:
// r = ½·√(1-λ), half-sizes int(r·W) and int(r·H) around a center uniform over the pixels, clamped to the
// image; λ then becomes the share of the image left unchanged, 1 - box area / (H·W), and the targets are
// λ·onehot(y) + (1-λ)·onehot(y).roll(1) (soft targets and per-sample weights mixed the same way).
//
// Draws from the batch's generator, in order (augmentation/common/mixing.h):
//   1. u = rand({1}, double): the batch is mixed iff u < p;
//   2. g = _standard_gamma(full({2}, α, double)): λ = g[0] / (g[0] + g[1]);
//   3. center column randint(W, {1}, int64), then center row randint(H, {1}, int64) (torchvision's order).
// All are drawn for every batch, mixed or not. A batch that is not mixed keeps its inputs; its targets
// still become one-hot probabilities.
#include "augmentation/common/batch_util.h"
#include "augmentation/common/mixing.h"

#include <loom/library.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace loom::augmentation {
namespace {

class CutMix final : public Augmentation {
 public:
  static FeatureInfo info() {
    return {
        .name = "cutmix",
        .version = "1.0.0",
        .summary = "pastes a box of each image's neighbour in the batch into it, targets mixed by area "
                   "(torchvision v2 CutMix)",
        .params = {
            ParamSpec::real("alpha", 1.0).at_least(1e-6).doc("λ ~ Beta(alpha, alpha) sets the box's area, one box per batch"),
            ParamSpec::real("p", 1.0).range(0.0, 1.0)
                .doc("probability that a batch is mixed (else its targets only become one-hot probabilities)"),
        },
    };
  }

  explicit CutMix(const CreateContext& ctx) : alpha_(ctx.params.real("alpha")), p_(ctx.params.real("p")) {
    const SampleSpec spec = dataset_spec(ctx, "cutmix");
    if (spec.shape.size() != 3)
      throw std::invalid_argument("cutmix: needs image samples [C, H, W]; the dataset's have " +
                                  std::to_string(spec.shape.size()) + " dimensions");
    classes_ = spec.num_classes;
  }

  void apply(AugmentBatch& batch, at::Generator& generator) const override {
    require_images(batch.x, "cutmix");
    const int64_t height = batch.x.size(2), width = batch.x.size(3);
    const bool mixed = draw_batch_chosen(p_, generator);
    const double lam = draw_beta(alpha_, generator);
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    const int64_t cx = at::randint(width, {1}, generator, i64).item<int64_t>();
    const int64_t cy = at::randint(height, {1}, generator, i64).item<int64_t>();
    if (!mixed || batch.x.size(0) == 0) return mix_targets(batch, 1.0, classes_, "cutmix");

    const double r = 0.5 * std::sqrt(1.0 - lam);
    const auto half_w = static_cast<int64_t>(r * static_cast<double>(width));
    const auto half_h = static_cast<int64_t>(r * static_cast<double>(height));
    const int64_t x1 = std::max<int64_t>(cx - half_w, 0), x2 = std::min(cx + half_w, width);
    const int64_t y1 = std::max<int64_t>(cy - half_h, 0), y2 = std::min(cy + half_h, height);
    const double adjusted = 1.0 - static_cast<double>((x2 - x1) * (y2 - y1)) / static_cast<double>(width * height);
    mix_targets(batch, adjusted, classes_, "cutmix");
    if (x2 <= x1 || y2 <= y1) return;
    at::Tensor out = batch.x.clone();
    const auto box = [&](const at::Tensor& t) { return t.slice(2, y1, y2).slice(3, x1, x2); };
    box(out).copy_(box(batch.x).roll(1, 0));
    batch.x = out;
  }

 private:
  double alpha_;
  double p_;
  int64_t classes_ = 0;
};

void register_features(Registrar& r) {
  r.add<Augmentation>(CutMix::info(), [](const CreateContext& c) { return std::make_shared<CutMix>(c); });
}

}  // namespace
}  // namespace loom::augmentation

LOOM_PLUGIN_LIBRARY("loom_augmentation_cutmix", "1.0.0", loom::augmentation::register_features)
