#include "augmentation/common/auto_augment.h"

#include "augmentation/common/batch_util.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace loom::augmentation {
namespace {

/// torch.linspace(lo, hi, bins) (float32) read as double.
at::Tensor linspace(double lo, double hi, int64_t bins) { return at::linspace(lo, hi, bins).to(at::kDouble); }

/// The dataset's plugin name for messages: fingerprints start with it ("synthetic/1.0.0;…").
std::string dataset_name(const Dataset& dataset) {
  const std::string fp = dataset.fingerprint();
  const std::string name = fp.substr(0, std::min(fp.find('/'), fp.find(';')));
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return "this run's dataset";
  return name.empty() ? "this run's dataset" : "'" + name + "'";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

at::Tensor magnitude_table(OpSpace space, int64_t bins, int64_t h, int64_t w) {
  if (bins < 2) throw std::invalid_argument("magnitude_table: needs at least 2 magnitude bins");
  const bool wide = space == OpSpace::TrivialAugmentWide;
  at::Tensor table = at::full({kNumImageOps, bins}, std::numeric_limits<double>::quiet_NaN(), at::kDouble);
  auto set = [&](ImageOp op, const at::Tensor& values) { table.select(0, static_cast<int64_t>(op)).copy_(values); };
  const double shear = wide ? 0.99 : 0.3, enhance = wide ? 0.99 : 0.9, rotate = wide ? 135.0 : 30.0;
  set(ImageOp::ShearX, linspace(0.0, shear, bins));
  set(ImageOp::ShearY, linspace(0.0, shear, bins));
  set(ImageOp::TranslateX, linspace(0.0, wide ? 32.0 : 150.0 / 331.0 * static_cast<double>(w), bins));
  set(ImageOp::TranslateY, linspace(0.0, wide ? 32.0 : 150.0 / 331.0 * static_cast<double>(h), bins));
  set(ImageOp::Rotate, linspace(0.0, rotate, bins));
  for (ImageOp op : {ImageOp::Brightness, ImageOp::Color, ImageOp::Contrast, ImageOp::Sharpness})
    set(op, linspace(0.0, enhance, bins));
  // (8 - (arange(bins) / ((bins - 1) / 4))).round().int(), / 6 for the wide space: 8 bits down to 4 (2).
  const at::Tensor bits = at::rsub(at::arange(bins, at::kLong).div(static_cast<double>(bins - 1) / (wide ? 6.0 : 4.0)), 8);
  set(ImageOp::Posterize, bits.round().to(at::kInt).to(at::kDouble));
  set(ImageOp::Solarize, linspace(1.0, 0.0, bins));
  return table;
}

bool is_signed(ImageOp op) {
  return is_geometric(op) || op == ImageOp::Brightness || op == ImageOp::Color || op == ImageOp::Contrast ||
         op == ImageOp::Sharpness;
}

AutoAugmentDraws draw_auto_augment(const AutoAugmentSettings& s, int64_t n, int64_t h, int64_t w,
                                   at::Generator& generator) {
  const auto dbl = at::TensorOptions().dtype(at::kDouble);
  AutoAugmentDraws d;
  d.chosen = sample_mask(n, s.p, generator, at::kCPU);
  const at::Tensor table = magnitude_table(s.space, s.num_bins, h, w).nan_to_num(0.0);  // none: magnitude 0
  at::Tensor signed_ops = at::zeros({kNumImageOps}, at::kBool);
  for (int64_t k = 0; k < kNumImageOps; ++k) signed_ops[k] = is_signed(static_cast<ImageOp>(k));
  std::vector<at::Tensor> ops, magnitudes;
  for (int64_t step = 0; step < s.num_ops; ++step) {
    const at::Tensor op = at::randint(0, kNumImageOps, {n}, generator, at::TensorOptions().dtype(at::kLong));
    at::Tensor level;
    if (s.magnitude < 0) {
      level = at::randint(0, s.num_bins, {n}, generator, dbl);
    } else {
      level = at::full({n}, static_cast<double>(s.magnitude), dbl);
      if (s.magnitude_std > 0)
        level = (level + at::randn({n}, generator, dbl) * s.magnitude_std).clamp(0, static_cast<double>(s.num_bins - 1));
    }
    const at::Tensor negative = at::rand({n}, generator, dbl).le(0.5);
    // The op's magnitude at the (possibly fractional) bin: linear between the two bins around it, which
    // is the table's own value at a whole bin.
    const at::Tensor lo = level.floor().to(at::kLong).clamp_max(s.num_bins - 1);
    const at::Tensor hi = (lo + 1).clamp_max(s.num_bins - 1);
    const at::Tensor frac = level - lo.to(at::kDouble);
    const at::Tensor flat = op * s.num_bins;
    const at::Tensor at_lo = table.view(-1).index_select(0, flat + lo), at_hi = table.view(-1).index_select(0, flat + hi);
    at::Tensor value = at::where(frac.gt(0), at_lo + frac * (at_hi - at_lo), at_lo);
    value = at::where(op.eq(static_cast<int64_t>(ImageOp::Posterize)), value.round(), value);  // whole bits
    value = at::where(negative & signed_ops.index_select(0, op), -value, value);
    ops.push_back(at::where(d.chosen, op, static_cast<int64_t>(ImageOp::Identity)));
    magnitudes.push_back(at::where(d.chosen, value, 0.0));
  }
  d.ops = ops.empty() ? at::zeros({0, n}, at::kLong) : at::stack(ops);
  d.magnitudes = magnitudes.empty() ? at::zeros({0, n}, dbl) : at::stack(magnitudes);
  return d;
}

AutoAugment::AutoAugment(AutoAugmentSettings settings, const CreateContext& ctx)
    : settings_(std::move(settings)), spec_(dataset_spec(ctx, settings_.name)) {
  const std::string& name = settings_.name;
  if (!has_pixel_affine(spec_))
    throw std::invalid_argument(name + " needs a dataset that declares its pixel affine (pixel_scale/pixel_shift), "
                                "e.g. fashion-mnist or image-folder; " + dataset_name(*ctx.dataset) + " declares none");
  if (spec_.shape.size() != 3 || (spec_.shape[0] != 1 && spec_.shape[0] != 3))
    throw std::invalid_argument(name + ": needs image samples [C, H, W] with C = 1 or 3; the dataset's have shape " +
                                shape_string(spec_.shape));
  if (static_cast<int64_t>(spec_.pixel_scale.size()) != spec_.shape[0] || spec_.pixel_shift.size() != spec_.pixel_scale.size())
    throw std::invalid_argument(name + ": the dataset declares " + std::to_string(spec_.pixel_scale.size()) +
                                " pixel_scale values for " + std::to_string(spec_.shape[0]) + " channels");
  if (settings_.magnitude >= settings_.num_bins)
    throw std::invalid_argument(name + ": magnitude = " + std::to_string(settings_.magnitude) +
                                " must be below num_magnitude_bins = " + std::to_string(settings_.num_bins) +
                                " (magnitude is a bin index, 0.." + std::to_string(settings_.num_bins - 1) + ")");
}

void AutoAugment::apply(AugmentBatch& batch, at::Generator& generator) const {
  require_images(batch.x, settings_.name);
  const at::Tensor& x = batch.x;
  const int64_t n = x.size(0);
  if (n == 0) return;
  const AutoAugmentDraws d = draw_auto_augment(settings_, n, x.size(2), x.size(3), generator);
  // Samples whose every op is Identity are left alone too (no round trip through the pixel affine).
  const at::Tensor active = d.chosen & d.ops.ne(static_cast<int64_t>(ImageOp::Identity)).any(0);
  if (settings_.num_ops == 0 || !active.any().item<bool>()) return;
  // [0, 1] pixels (clamped: the affine's float rounding must not leave the domain of torchvision's ops).
  at::Tensor u = to_unit_pixels(x, spec_).clamp_(0, 1);
  for (int64_t step = 0; step < settings_.num_ops; ++step) u = apply_image_ops(u, d.ops[step], d.magnitudes[step]);
  const at::Tensor out = from_unit_pixels(u, spec_).to(x.scalar_type());
  batch.x = at::where(active.view({n, 1, 1, 1}).to(x.device()), out, x);  // others: bit for bit as they were
}

}  // namespace loom::augmentation
