// flip: mirrors each image horizontally (or vertically) with probability p — torchvision's
// RandomHorizontalFlip / RandomVerticalFlip, per sample.
#include "augmentation/common/batch_util.h"

#include <loom/library.h>

#include <ATen/ATen.h>

namespace loom::augmentation {
namespace {

class Flip final : public Augmentation {
 public:
  static FeatureInfo info() {
    return {
        .name = "flip",
        .version = "1.0.0",
        .summary = "random horizontal or vertical flip per sample (torchvision RandomHorizontalFlip/RandomVerticalFlip)",
        .params = {
            ParamSpec::choice("direction", "horizontal", {"horizontal", "vertical"}).doc("the axis mirrored"),
            ParamSpec::real("p", 0.5).range(0.0, 1.0).doc("probability that a sample is flipped"),
        },
    };
  }

  explicit Flip(const CreateContext& ctx)
      : vertical_(ctx.params.str("direction") == "vertical"), p_(ctx.params.real("p")) {
    const SampleSpec spec = dataset_spec(ctx, "flip");
    if (spec.shape.size() < 2)
      throw std::invalid_argument("flip: needs samples with at least two dimensions; the dataset's have " +
                                  std::to_string(spec.shape.size()));
  }

  void apply(AugmentBatch& batch, at::Generator& generator) const override {
    const at::Tensor& x = batch.x;
    const int64_t n = x.size(0);
    if (n == 0) return;
    const at::Tensor chosen = sample_mask(n, p_, generator, x.device());
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[0] = n;
    batch.x = at::where(chosen.view(shape), x.flip(vertical_ ? -2 : -1), x);
  }

 private:
  bool vertical_;
  double p_;
};

void register_features(Registrar& r) {
  r.add<Augmentation>(Flip::info(), [](const CreateContext& c) { return std::make_shared<Flip>(c); });
}

}  // namespace
}  // namespace loom::augmentation

LOOM_PLUGIN_LIBRARY("loom_augmentation_flip", "1.0.0", loom::augmentation::register_features)
