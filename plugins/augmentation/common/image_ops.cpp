// Colour image ops (image_ops.h) and the RandAugment dispatch: torchvision.transforms.v2.functional's
// float-image kernels (_color.py), with per-sample parameters as [N, 1, 1, 1] tensors. A Python float
// parameter meets a float32 image as a float32 value in torch's kernels; so do these (double -> float once).
#include "augmentation/common/image_ops.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace loom::augmentation {
namespace {

std::string shape_string(at::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

void require_images(const at::Tensor& img, const char* op) {
  if (img.dim() != 4 || (img.size(1) != 1 && img.size(1) != 3) || !img.is_floating_point())
    throw std::invalid_argument(std::string("image ops: ") + op +
                                " needs float images [N, C, H, W] with C = 1 or 3, got shape " +
                                shape_string(img.sizes()) + " of " + std::string(c10::toString(img.scalar_type())));
}

/// Per-sample values [N] (any dtype, read in double) as [N, 1, 1, 1] in the images' dtype and device.
at::Tensor per_sample(const at::Tensor& values, const at::Tensor& img) {
  if (values.numel() != img.size(0))
    throw std::invalid_argument("image ops: needs one parameter per sample (" + std::to_string(img.size(0)) + "), got " +
                                std::to_string(values.numel()));
  return values.to(at::kCPU, at::kDouble).reshape({-1, 1, 1, 1}).to(img.scalar_type()).to(img.device());
}

/// _rgb_to_grayscale_image(preserve_dtype = False) of a 3-channel batch: [N, 1, H, W].
at::Tensor grayscale(const at::Tensor& img) {
  const at::Tensor r = img.select(1, 0), g = img.select(1, 1), b = img.select(1, 2);
  return r.mul(0.2989).add_(g, 0.587).add_(b, 0.114).unsqueeze(1);
}

/// _blend: image1 · ratio + image2 · (1 - ratio), clamped to [0, 1]; ratio [N] in double.
at::Tensor blend(const at::Tensor& image1, const at::Tensor& image2, const at::Tensor& ratio) {
  const at::Tensor r = ratio.to(at::kCPU, at::kDouble);
  return image1.mul(per_sample(r, image1)).add_(image2.mul(per_sample(1.0 - r, image1))).clamp_(0, 1);
}

}  // namespace

const char* image_op_name(ImageOp op) {
  static constexpr const char* kNames[kNumImageOps] = {
      "Identity", "ShearX", "ShearY",    "TranslateX", "TranslateY", "Rotate",       "Brightness",
      "Color",    "Contrast", "Sharpness", "Posterize", "Solarize",  "AutoContrast", "Equalize"};
  const auto i = static_cast<int64_t>(op);
  return i >= 0 && i < kNumImageOps ? kNames[i] : "?";
}

bool is_geometric(ImageOp op) {
  return op == ImageOp::ShearX || op == ImageOp::ShearY || op == ImageOp::TranslateX || op == ImageOp::TranslateY ||
         op == ImageOp::Rotate;
}

at::Tensor adjust_brightness(const at::Tensor& img, const at::Tensor& factor) {
  require_images(img, "Brightness");
  return img.mul(per_sample(factor, img)).clamp_(0, 1);
}

at::Tensor adjust_saturation(const at::Tensor& img, const at::Tensor& factor) {
  require_images(img, "Color");
  if (img.size(1) == 1) return img;  // "Match PIL behaviour": grey images are left as they are
  return blend(img, grayscale(img), factor);
}

at::Tensor adjust_contrast(const at::Tensor& img, const at::Tensor& factor) {
  require_images(img, "Contrast");
  const at::Tensor grey = img.size(1) == 3 ? grayscale(img) : img;
  return blend(img, grey.mean({-3, -2, -1}, /*keepdim=*/true), factor);
}

at::Tensor adjust_sharpness(const at::Tensor& img, const at::Tensor& factor) {
  require_images(img, "Sharpness");
  const int64_t c = img.size(1), h = img.size(2), w = img.size(3);
  if (img.numel() == 0 || h <= 2 || w <= 2) return img;
  // A normalised 3x3 kernel with 1s around a 5, per channel; the border rows and columns stay as they are.
  const double a = 1.0 / 13.0, b = 5.0 / 13.0;
  const at::Tensor kernel = at::tensor({a, a, a, a, b, a, a, a, a}, at::TensorOptions().dtype(at::kDouble))
                                .to(img.options())
                                .view({1, 1, 3, 3})
                                .expand({c, 1, 3, 3});
  at::Tensor out = img.clone();
  const std::vector<int64_t> ones{1, 1}, zeros{0, 0};
  at::Tensor blurred = at::conv2d(out, kernel, /*bias=*/at::Tensor(), ones, zeros, ones, c);
  at::Tensor inner = out.slice(2, 1, h - 1).slice(3, 1, w - 1);
  const at::Tensor f = factor.to(at::kCPU, at::kDouble);
  inner.add_(blurred.sub_(inner).mul_(per_sample(1.0 - f, img)));
  return out.clamp_(0, 1);
}

at::Tensor posterize(const at::Tensor& img, const at::Tensor& bits) {
  require_images(img, "Posterize");
  const at::Tensor b = bits.to(at::kCPU, at::kDouble);
  if (b.numel() > 0 && (b.min().item<double>() < 0 || b.max().item<double>() > 8))
    throw std::invalid_argument("image ops: Posterize needs bits in [0, 8]");
  const at::Tensor levels = at::pow(2.0, b.trunc());  // 1 << bits
  const at::Tensor l = per_sample(levels, img);
  return img.mul(l).floor_().clamp_min_(0).clamp_max_(l - 1).mul_(per_sample(1.0 / levels, img));
}

at::Tensor solarize(const at::Tensor& img, const at::Tensor& threshold) {
  require_images(img, "Solarize");
  return at::where(img.ge(per_sample(threshold, img)), at::rsub(img, 1.0), img);
}

at::Tensor autocontrast(const at::Tensor& img) {
  require_images(img, "AutoContrast");
  if (img.numel() == 0) return img;
  at::Tensor minimum = img.amin({-2, -1}, /*keepdim=*/true);
  at::Tensor maximum = img.amax({-2, -1}, /*keepdim=*/true);
  const at::Tensor constant = maximum.eq(minimum);
  at::Tensor inv_scale = maximum.sub_(minimum).mul_(1.0);
  minimum.masked_fill_(constant, 0.0);
  inv_scale.masked_fill_(constant, 1.0);
  return img.sub(minimum).div_(inv_scale).clamp_(0, 1);
}

at::Tensor equalize(const at::Tensor& img) {
  require_images(img, "Equalize");
  if (img.numel() == 0) return img;
  // to_dtype(uint8, scale=True); then PIL's equalization per image and channel, all in one histogram pass.
  const at::Tensor image = img.mul(255.0 + 1.0 - 1e-3).to(at::kByte);
  const at::Tensor flat = image.flatten(-2).to(at::kLong);  // [N, C, H·W]
  at::Tensor hist = at::zeros({img.size(0), img.size(1), 256}, flat.options().dtype(at::kInt));
  hist.scatter_add_(-1, flat, at::ones({1}, hist.options()).expand_as(flat));
  at::Tensor cum_hist = hist.cumsum(-1);
  const at::Tensor index = cum_hist.argmax(-1).unsqueeze_(-1);
  const at::Tensor num_non_max_pixels = at::rsub(hist.gather(-1, index), flat.size(-1));
  at::Tensor step = num_non_max_pixels.div(255, "floor");
  const at::Tensor valid = step.ne(0).unsqueeze_(-1);  // [N, C, 1, 1]
  cum_hist = cum_hist.slice(-1, 0, 255);
  cum_hist.add_(step.div(2, "floor")).div_(step.clamp_min(1), "floor").clamp_(0, 255);
  at::Tensor lut = at::cat({at::zeros({img.size(0), img.size(1), 1}, image.options()), cum_hist.to(at::kByte)}, -1);
  const at::Tensor equalized = lut.gather(-1, flat).view_as(image);
  return at::where(valid, equalized, image).to(img.scalar_type()).mul_(1.0 / 255.0);
}

at::Tensor apply_image_op(ImageOp op, const at::Tensor& img, const at::Tensor& magnitude) {
  require_images(img, image_op_name(op));
  if (magnitude.numel() != img.size(0))
    throw std::invalid_argument(std::string("image ops: ") + image_op_name(op) + " needs one magnitude per sample (" +
                                std::to_string(img.size(0)) + "), got " + std::to_string(magnitude.numel()));
  if (is_geometric(op)) {
    const at::Tensor m = magnitude.to(at::kCPU, at::kDouble).contiguous().view(-1);
    std::vector<AffineMatrix> matrices;
    for (int64_t i = 0; i < m.numel(); ++i)
      matrices.push_back(image_op_matrix(op, m.data_ptr<double>()[i], img.size(2), img.size(3)));
    return affine_sample(img, matrices);
  }
  const at::Tensor m = magnitude.to(at::kCPU, at::kDouble);
  switch (op) {
    case ImageOp::Identity: return img;
    case ImageOp::Brightness: return adjust_brightness(img, 1.0 + m);
    case ImageOp::Color: return adjust_saturation(img, 1.0 + m);
    case ImageOp::Contrast: return adjust_contrast(img, 1.0 + m);
    case ImageOp::Sharpness: return adjust_sharpness(img, 1.0 + m);
    case ImageOp::Posterize: return posterize(img, m.trunc());
    case ImageOp::Solarize: return solarize(img, m);  // threshold = bound (1 for float images) · m
    case ImageOp::AutoContrast: return autocontrast(img);
    case ImageOp::Equalize: return equalize(img);
    default: throw std::invalid_argument("image ops: unknown op " + std::to_string(static_cast<int64_t>(op)));
  }
}

at::Tensor apply_image_ops(const at::Tensor& img, const at::Tensor& ops, const at::Tensor& magnitude) {
  require_images(img, "apply_image_ops");
  const int64_t n = img.size(0);
  const at::Tensor op = ops.to(at::kCPU, at::kLong).contiguous().view(-1);
  const at::Tensor m = magnitude.to(at::kCPU, at::kDouble).contiguous().view(-1);
  if (op.numel() != n || m.numel() != n)
    throw std::invalid_argument("image ops: apply_image_ops needs one op and one magnitude per sample (" +
                                std::to_string(n) + "), got " + std::to_string(op.numel()) + " and " +
                                std::to_string(m.numel()));
  const int64_t* o = op.data_ptr<int64_t>();
  const double* v = m.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i)
    if (o[i] < 0 || o[i] >= kNumImageOps) throw std::invalid_argument("image ops: unknown op " + std::to_string(o[i]));
  at::Tensor out;  // a copy of img, made when the first group of samples is written into it
  // Runs `fn` on the samples `rows` (one batched call) and writes its result into `out`.
  auto run_group = [&](const std::vector<int64_t>& rows, auto&& fn) {
    if (rows.empty()) return;
    if (static_cast<int64_t>(rows.size()) == n) {
      out = fn(img, at::arange(n, at::kLong));
      return;
    }
    const at::Tensor cpu_rows = at::tensor(rows, at::TensorOptions().dtype(at::kLong));
    const at::Tensor device_rows = cpu_rows.to(img.device());
    if (!out.defined()) out = img.clone();
    out.index_copy_(0, device_rows, fn(img.index_select(0, device_rows), cpu_rows));
  };
  // Every geometric sample in one grid_sample, each with its own matrix.
  std::vector<int64_t> rows;
  std::vector<AffineMatrix> matrices;
  for (int64_t i = 0; i < n; ++i) {
    if (!is_geometric(static_cast<ImageOp>(o[i]))) continue;
    rows.push_back(i);
    matrices.push_back(image_op_matrix(static_cast<ImageOp>(o[i]), v[i], img.size(2), img.size(3)));
  }
  run_group(rows, [&](const at::Tensor& sub, const at::Tensor&) { return affine_sample(sub, matrices); });
  // One batched call per colour op present.
  for (int64_t k = static_cast<int64_t>(ImageOp::Brightness); k < kNumImageOps; ++k) {
    rows.clear();
    for (int64_t i = 0; i < n; ++i)
      if (o[i] == k) rows.push_back(i);
    run_group(rows, [&](const at::Tensor& sub, const at::Tensor& cpu_rows) {
      return apply_image_op(static_cast<ImageOp>(k), sub, m.index_select(0, cpu_rows));
    });
  }
  return out.defined() ? out : img;
}

}  // namespace loom::augmentation
