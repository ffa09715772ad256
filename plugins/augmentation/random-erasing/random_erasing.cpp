// random-erasing: with probability p per sample, a random rectangle of the image is replaced by zeros
// (the normalised domain's 0: torchvision's value = 0 after Normalize) or by standard normal noise per
// pixel (timm's mode "pixel", torchvision's value = "random") — torchvision's RandomErasing / timm's
// --reprob, for the whole batch at once through masks.
//
// The rectangle follows torchvision's RandomErasing.get_params: up to 10 attempts of an area fraction
// uniform in `scale` and an aspect ratio log-uniform in `ratio`, h = round(√(area·ratio)),
// w = round(√(area/ratio)), the first attempt with h < H and w < W wins (none: the sample is left as is),
// then a top-left corner uniform over the positions where it fits. The attempts of all samples are
// drawn at once; the draws from the batch's generator, in order, are
//   1. rand({B}, double): sample b is erased iff < p;
//   2. rand({B, 10}, double): area fractions, scale[0] + u·(scale[1] - scale[0]);
//   3. rand({B, 10}, double): log aspect ratios, log ratio[0] + u·(log ratio[1] - log ratio[0]);
//   4. rand({B, 2}, double): top = floor(u0·(H - h + 1)), left = floor(u1·(W - w + 1));
//   5. value = "random" only: randn({Σ C·h·w}, float) over the erased samples in batch order, each one's
//      block laid out [C, h, w] (torchvision's per-sample v).
#include "augmentation/common/batch_util.h"

#include <loom/library.h>

#include <ATen/ATen.h>

#include <cmath>

namespace loom::augmentation {
namespace {

constexpr int64_t kAttempts = 10;  // torchvision's

class RandomErasing final : public Augmentation {
 public:
  static FeatureInfo info() {
    return {
        .name = "random-erasing",
        .version = "1.0.0",
        .summary = "erases a random rectangle per sample (torchvision RandomErasing, timm --reprob)",
        .params = {
            ParamSpec::real("p", 0.5).range(0.0, 1.0).doc("probability that a sample is erased"),
            ParamSpec::float_list("scale", {0.02, 0.33}).range(0.0, 1.0)
                .doc("[min, max] fraction of the image's area erased"),
            ParamSpec::float_list("ratio", {0.3, 3.3}).at_least(0.0).doc("[min, max] aspect ratio (height/width), drawn log-uniformly"),
            ParamSpec::choice("value", "zero", {"zero", "random"})
                .doc("zero: 0 in the dataset's (normalised) domain; random: standard normal noise per pixel and channel"),
        },
    };
  }

  explicit RandomErasing(const CreateContext& ctx)
      : p_(ctx.params.real("p")),
        scale_(ctx.params.get<std::vector<double>>("scale")),
        ratio_(ctx.params.get<std::vector<double>>("ratio")),
        random_(ctx.params.str("value") == "random") {
    const SampleSpec spec = dataset_spec(ctx, "random-erasing");
    if (spec.shape.size() != 3)
      throw std::invalid_argument("random-erasing: needs image samples [C, H, W]; the dataset's have " +
                                  std::to_string(spec.shape.size()) + " dimensions");
    if (scale_.size() != 2 || !(scale_[0] <= scale_[1]))
      throw std::invalid_argument("random-erasing: scale must be [min, max] with min <= max");
    if (ratio_.size() != 2 || !(ratio_[0] > 0.0 && ratio_[0] <= ratio_[1]))
      throw std::invalid_argument("random-erasing: ratio must be [min, max] with 0 < min <= max");
    if (random_ && !c10::isFloatingType(spec.dtype))
      throw std::invalid_argument(std::string("random-erasing: value = \"random\" needs floating-point samples; the "
                                              "dataset's are ") + c10::toString(spec.dtype) + "; use value = \"zero\"");
  }

  void apply(AugmentBatch& batch, at::Generator& generator) const override {
    require_images(batch.x, "random-erasing");
    const at::Tensor& x = batch.x;
    const int64_t n = x.size(0), c = x.size(1), height = x.size(2), width = x.size(3);
    if (n == 0) return;
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    const at::Tensor chosen = sample_mask(n, p_, generator, at::kCPU);
    const at::Tensor area = at::rand({n, kAttempts}, generator, f64).mul(scale_[1] - scale_[0]).add(scale_[0]) *
                            static_cast<double>(height * width);
    const double log_lo = std::log(ratio_[0]), log_hi = std::log(ratio_[1]);
    const at::Tensor aspect = at::rand({n, kAttempts}, generator, f64).mul(log_hi - log_lo).add(log_lo).exp();
    const at::Tensor hs = (area * aspect).sqrt().round(), ws = (area / aspect).sqrt().round();
    const at::Tensor fits = hs.lt(height) & ws.lt(width);
    const at::Tensor first = fits.to(at::kByte).argmax(1, /*keepdim=*/true);  // the first attempt that fits
    const at::Tensor erased = chosen & fits.any(1);
    const at::Tensor h = at::where(erased, hs.gather(1, first).squeeze(1), 0).to(at::kLong);
    const at::Tensor w = at::where(erased, ws.gather(1, first).squeeze(1), 0).to(at::kLong);
    const at::Tensor corner = at::rand({n, 2}, generator, f64);
    const at::Tensor top = corner.select(1, 0).mul(height - h + 1).floor().to(at::kLong);
    const at::Tensor left = corner.select(1, 1).mul(width - w + 1).floor().to(at::kLong);
    const int64_t total = c * (h * w).sum().item<int64_t>();
    if (total == 0) return;  // nothing erased: the batch is left as it is
    const at::Tensor noise = random_ ? at::randn({total}, generator, at::TensorOptions().dtype(at::kFloat)) : at::Tensor();

    // [n, 1, H, W]: rows top..top+h-1 and columns left..left+w-1 of each sample (h = w = 0: none).
    const c10::Device device = x.device();
    const auto span = [&](const at::Tensor& start, const at::Tensor& size, int64_t extent) {
      const at::Tensor s = start.to(device).unsqueeze(1), e = (start + size).to(device).unsqueeze(1);
      const at::Tensor q = at::arange(extent, at::TensorOptions().dtype(at::kLong).device(device));
      return q.ge(s) & q.lt(e);  // [n, extent]
    };
    const at::Tensor mask = (span(top, h, height).unsqueeze(2) & span(left, w, width).unsqueeze(1)).unsqueeze(1);
    // masked_scatter fills the masked elements in memory order (sample, channel, row, column): each
    // sample's block of the noise, [C, h, w], lands in its rectangle.
    batch.x = random_ ? x.masked_scatter(mask, noise.to(x.options())) : x.masked_fill(mask, 0);
  }

 private:
  double p_;
  std::vector<double> scale_, ratio_;
  bool random_;
};

void register_features(Registrar& r) {
  r.add<Augmentation>(RandomErasing::info(), [](const CreateContext& c) { return std::make_shared<RandomErasing>(c); });
}

}  // namespace
}  // namespace loom::augmentation

LOOM_PLUGIN_LIBRARY("loom_augmentation_random_erasing", "1.0.0", loom::augmentation::register_features)
