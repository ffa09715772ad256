// Geometric image ops (image_ops.h): torchvision.transforms.v2.functional's affine/rotate for float images,
// batched with one matrix per sample. Matrices are built on the CPU in double with the operations of
// _get_inverse_affine_matrix (same libm, same order: the same bits), then the grid exactly as _affine_grid
// builds it, in the images' dtype.
#include "augmentation/common/image_ops.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace loom::augmentation {
namespace {

constexpr double kPi = 3.14159265358979323846;  // CPython's Py_MATH_PI
constexpr double kDegToRad = kPi / 180.0;       // math.radians(x) = x * degToRad
constexpr double kRadToDeg = 180.0 / kPi;       // math.degrees(x) = x * radToDeg

/// Python's float `a % b` (the result takes the sign of b).
double python_mod(double a, double b) {
  double mod = std::fmod(a, b);
  if (mod != 0.0) {
    if ((b < 0) != (mod < 0)) mod += b;
  } else {
    mod = std::copysign(0.0, b);
  }
  return mod;
}

std::vector<double> host_values(const at::Tensor& t, int64_t n, const char* what) {
  const at::Tensor c = t.to(at::kCPU, at::kDouble).contiguous().view(-1);
  if (c.numel() != n)
    throw std::invalid_argument(std::string("image ops: ") + what + " needs one value per sample (" +
                                std::to_string(n) + "), got " + std::to_string(c.numel()));
  const double* p = c.data_ptr<double>();
  return {p, p + n};
}

void require_images(const at::Tensor& img, const char* op) {
  if (img.dim() != 4 || !img.is_floating_point())
    throw std::invalid_argument(std::string("image ops: ") + op + " needs float images [N, C, H, W], got " +
                                std::to_string(img.dim()) + " dimensions of " + std::string(c10::toString(img.scalar_type())));
}

}  // namespace

AffineMatrix inverse_affine_matrix(double center_x, double center_y, double angle, double tx, double ty,
                                   double shear_x, double shear_y) {
  const double rot = angle * kDegToRad;
  const double sx = shear_x * kDegToRad;
  const double sy = shear_y * kDegToRad;
  const double cos_sy = std::cos(sy);
  const double tan_sx = std::tan(sx);
  const double rot_minus_sy = rot - sy;
  const double cx_plus_tx = center_x + tx;
  const double cy_plus_ty = center_y + ty;
  // Rotate Scale Shear without scaling, then its inverse (scale = 1: the divisions by it are exact).
  const double a = std::cos(rot_minus_sy) / cos_sy;
  const double b = -(a * tan_sx + std::sin(rot));
  const double c = std::sin(rot_minus_sy) / cos_sy;
  const double d = std::cos(rot) - c * tan_sx;
  AffineMatrix m{d, -b, 0.0, -c, a, 0.0};
  m[2] += center_x - m[0] * cx_plus_tx - m[1] * cy_plus_ty;
  m[5] += center_y - m[3] * cx_plus_tx - m[4] * cy_plus_ty;
  return m;
}

AffineMatrix image_op_matrix(ImageOp op, double magnitude, int64_t h, int64_t w) {
  const double m = magnitude;
  switch (op) {
    case ImageOp::ShearX:  // F.affine(shear = [degrees(atan(m)), 0], center = [0, 0]): the top-left corner
      return inverse_affine_matrix(-static_cast<double>(w) * 0.5, -static_cast<double>(h) * 0.5, 0.0, 0.0, 0.0,
                                   std::atan(m) * kRadToDeg, 0.0);
    case ImageOp::ShearY:
      return inverse_affine_matrix(-static_cast<double>(w) * 0.5, -static_cast<double>(h) * 0.5, 0.0, 0.0, 0.0, 0.0,
                                   std::atan(m) * kRadToDeg);
    case ImageOp::TranslateX:  // translate = [int(m), 0]
      return inverse_affine_matrix(0.0, 0.0, 0.0, std::trunc(m), 0.0, 0.0, 0.0);
    case ImageOp::TranslateY:
      return inverse_affine_matrix(0.0, 0.0, 0.0, 0.0, std::trunc(m), 0.0, 0.0);
    case ImageOp::Rotate: {
      // rotate_image: angle % 360; 0 and 180 (and 90/270 on square images) are exact copies/rot90 there.
      const double angle = python_mod(m, 360.0);
      if (angle == 0.0) return {1.0, 0.0, 0.0, 0.0, 1.0, 0.0};
      if (angle == 180.0) return {-1.0, 0.0, 0.0, 0.0, -1.0, 0.0};
      if (h == w && angle == 90.0) return {0.0, -1.0, 0.0, 1.0, 0.0, 0.0};
      if (h == w && angle == 270.0) return {0.0, 1.0, 0.0, -1.0, 0.0, 0.0};
      return inverse_affine_matrix(0.0, 0.0, -angle, 0.0, 0.0, 0.0, 0.0);
    }
    default:
      throw std::invalid_argument(std::string("image ops: ") + image_op_name(op) + " is not a geometric op");
  }
}

at::Tensor affine_sample(const at::Tensor& img, const std::vector<AffineMatrix>& matrices) {
  require_images(img, "affine");
  const int64_t n = img.size(0), h = img.size(2), w = img.size(3);
  if (static_cast<int64_t>(matrices.size()) != n)
    throw std::invalid_argument("image ops: affine needs one matrix per sample (" + std::to_string(n) + "), got " +
                                std::to_string(matrices.size()));
  if (img.numel() == 0) return img.clone();
  const auto options = img.options();
  // theta = torch.tensor(matrix, dtype=image dtype): each double rounded once.
  at::Tensor theta = at::empty({n, 6}, at::TensorOptions().dtype(at::kDouble));
  double* t = theta.data_ptr<double>();
  for (const AffineMatrix& m : matrices) t = std::copy(m.begin(), m.end(), t);
  theta = theta.to(img.scalar_type()).view({n, 2, 3}).to(img.device());
  // _affine_grid: pixel centres relative to the image centre, times theta, over half the size.
  at::Tensor base = at::empty({1, h, w, 3}, options);
  base.select(3, 0).copy_(at::linspace((1.0 - static_cast<double>(w)) * 0.5, (static_cast<double>(w) - 1.0) * 0.5, w,
                                       at::TensorOptions().device(img.device())));
  base.select(3, 1).copy_(at::linspace((1.0 - static_cast<double>(h)) * 0.5, (static_cast<double>(h) - 1.0) * 0.5, h,
                                       at::TensorOptions().device(img.device()))
                              .unsqueeze(-1));
  base.select(3, 2).fill_(1);
  const at::Tensor half = at::tensor({0.5 * static_cast<double>(w), 0.5 * static_cast<double>(h)},
                                     at::TensorOptions().dtype(at::kDouble)).to(options);
  const at::Tensor rescaled = theta.transpose(1, 2).div(half);  // [n, 3, 2]
  const at::Tensor grid = base.view({1, h * w, 3}).expand({n, h * w, 3}).bmm(rescaled).view({n, h, w, 2});
  // grid_sample(mode = "nearest" (1), padding_mode = "zeros" (0), align_corners = False); fill = None.
  return at::grid_sampler(img, grid, /*interpolation_mode=*/1, /*padding_mode=*/0, /*align_corners=*/false);
}

at::Tensor affine_nearest(const at::Tensor& img, const at::Tensor& angle, const at::Tensor& tx, const at::Tensor& ty,
                          const at::Tensor& shear_x, const at::Tensor& shear_y, const at::Tensor& center_x,
                          const at::Tensor& center_y) {
  require_images(img, "affine");
  const int64_t n = img.size(0);
  const auto a = host_values(angle, n, "angle"), x = host_values(tx, n, "tx"), y = host_values(ty, n, "ty");
  const auto sx = host_values(shear_x, n, "shear_x"), sy = host_values(shear_y, n, "shear_y");
  const auto cx = host_values(center_x, n, "center_x"), cy = host_values(center_y, n, "center_y");
  std::vector<AffineMatrix> matrices;
  matrices.reserve(static_cast<size_t>(n));
  for (size_t i = 0; i < static_cast<size_t>(n); ++i)
    matrices.push_back(inverse_affine_matrix(cx[i], cy[i], a[i], x[i], y[i], sx[i], sy[i]));
  return affine_sample(img, matrices);
}

at::Tensor rotate_nearest(const at::Tensor& img, const at::Tensor& angle) {
  require_images(img, "rotate");
  const int64_t n = img.size(0);
  const auto a = host_values(angle, n, "angle");
  std::vector<AffineMatrix> matrices;
  matrices.reserve(static_cast<size_t>(n));
  for (double v : a) matrices.push_back(image_op_matrix(ImageOp::Rotate, v, img.size(2), img.size(3)));
  return affine_sample(img, matrices);
}

}  // namespace loom::augmentation
