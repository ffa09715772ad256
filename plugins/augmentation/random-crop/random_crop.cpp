// random-crop: pads each image by `padding` pixels (black, or a reflection of the image) and takes a
// random window of the original size — torchvision's RandomCrop(size, padding, padding_mode) — for the
// whole batch in one gather, each sample with its own offsets.
#include "augmentation/common/batch_util.h"

#include <loom/library.h>

#include <ATen/ATen.h>

namespace loom::augmentation {
namespace {

class RandomCrop final : public Augmentation {
 public:
  static FeatureInfo info() {
    return {
        .name = "random-crop",
        .version = "1.0.0",
        .summary = "random crop of the original size from the image padded on every side (torchvision RandomCrop)",
        .params = {
            ParamSpec::integer("padding", 4).range(0, 512).doc("pixels added on every side before cropping"),
            ParamSpec::choice("padding_mode", "zero", {"zero", "reflect"})
                .doc("zero: black pixels (torchvision's fill = 0 before normalisation; 0 where the dataset "
                     "declares no pixel affine); reflect: the image mirrored at its border, without repeating it"),
            ParamSpec::real("p", 1.0).range(0.0, 1.0).doc("probability that a sample is cropped (else left as is)"),
        },
    };
  }

  explicit RandomCrop(const CreateContext& ctx)
      : spec_(dataset_spec(ctx, "random-crop")),
        padding_(ctx.params.integer("padding")),
        reflect_(ctx.params.str("padding_mode") == "reflect"),
        p_(ctx.params.real("p")) {
    if (spec_.shape.size() != 3)
      throw std::invalid_argument("random-crop: needs image samples [C, H, W]; the dataset's have " +
                                  std::to_string(spec_.shape.size()) + " dimensions");
    if (reflect_ && (padding_ >= spec_.shape[1] || padding_ >= spec_.shape[2]))
      throw std::invalid_argument("random-crop: padding_mode = \"reflect\" needs padding < the image's height and "
                                  "width (" + std::to_string(spec_.shape[1]) + "x" + std::to_string(spec_.shape[2]) +
                                  "), got padding = " + std::to_string(padding_) + "; lower padding or use \"zero\"");
  }

  void apply(AugmentBatch& batch, at::Generator& generator) const override {
    require_images(batch.x, "random-crop");
    const at::Tensor& x = batch.x;
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    if (n == 0 || padding_ == 0) return;
    // Draws, in order: which samples, then the vertical and the horizontal offsets (0..2·padding).
    const at::Tensor chosen = sample_mask(n, p_, generator, at::kCPU);
    at::Tensor dy = at::randint(0, 2 * padding_ + 1, {n}, generator);
    at::Tensor dx = at::randint(0, 2 * padding_ + 1, {n}, generator);
    dy = at::where(chosen, dy, padding_), dx = at::where(chosen, dx, padding_);  // offset = padding: unchanged
    // Per sample, the source row/column (in the unpadded image) of every output row/column.
    const at::Tensor rows = source(dy, h), cols = source(dx, w);  // [n, h], [n, w]
    at::Tensor valid = rows.ge(0).unsqueeze(2) & cols.ge(0).unsqueeze(1);  // [n, h, w]
    const at::Tensor index = (rows.clamp_min(0).unsqueeze(2) * w + cols.clamp_min(0).unsqueeze(1)).view({n, 1, h * w});
    at::Tensor out = x.reshape({n, c, h * w}).gather(2, index.expand({n, c, h * w}).to(x.device())).view({n, c, h, w});
    if (!reflect_)
      out = at::where(valid.unsqueeze(1).to(x.device()), out, per_channel(black_values(spec_, c), x));
    batch.x = out;
  }

 private:
  /// Source coordinate of output coordinate o (0..size-1) for offset d: o + d - padding, reflected into
  /// the image (reflect) or -1 outside it (zero).
  at::Tensor source(const at::Tensor& offset, int64_t size) const {
    at::Tensor q = offset.unsqueeze(1) + at::arange(size, at::kLong) - padding_;
    if (!reflect_) return at::where(q.ge(0) & q.lt(size), q, -1);
    q = q.abs();                                 // -k → k
    return at::where(q.ge(size), 2 * (size - 1) - q, q);  // size-1+k → size-1-k
  }

  SampleSpec spec_;
  int64_t padding_;
  bool reflect_;
  double p_;
};

void register_features(Registrar& r) {
  r.add<Augmentation>(RandomCrop::info(), [](const CreateContext& c) { return std::make_shared<RandomCrop>(c); });
}

}  // namespace
}  // namespace loom::augmentation

LOOM_PLUGIN_LIBRARY("loom_augmentation_random_crop", "1.0.0", loom::augmentation::register_features)
