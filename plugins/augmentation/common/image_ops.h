// The 14 image ops of torchvision.transforms.v2.RandAugment's op space (TrivialAugmentWide uses the same
// ops), batched: float images in [0, 1] ("unit pixels", see loom::to_unit_pixels), [N, C, H, W] with
// C = 1 or 3, on any device, each sample with its own parameter. Every kernel mirrors the float-image path
// of torchvision.transforms.v2.functional (0.29) operation for operation, so results match it exactly or
// to float rounding (tests/test_augment_randaugment.cpp measures it):
//   - geometric ops: torchvision's inverse affine matrix (_get_inverse_affine_matrix, in double), its
//     affine grid (_affine_grid, in float32) and grid_sample with NEAREST interpolation, zeros outside
//     (RandAugment's default fill = None, i.e. black);
//   - colour ops: the same products, blends and clamps; Color is a no-op for 1 channel, as in torchvision;
//   - posterize works on the float value (floor(x · 2^bits) / 2^bits, as torchvision's float path does, so
//     bits = 8 maps 1 to 255/256); equalize converts to uint8 as to_dtype(scale=True) does (x · 255.999,
//     truncated), equalizes per image and channel like PIL, and converts back (· 1/255).
// Parameter tensors are [N], any floating dtype, on the CPU (they are read there: matrices and per-sample
// constants are built on the CPU and moved to the images' device). Inputs are never written.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <vector>

namespace loom::augmentation {

/// The op space, in torchvision's order (RandAugment._AUGMENTATION_SPACE without Invert).
enum class ImageOp : int64_t {
  Identity, ShearX, ShearY, TranslateX, TranslateY, Rotate, Brightness, Color, Contrast, Sharpness,
  Posterize, Solarize, AutoContrast, Equalize,
};
inline constexpr int64_t kNumImageOps = 14;

/// torchvision's name of the op ("ShearX", …).
const char* image_op_name(ImageOp op);
/// Whether the op is geometric (shear, translate, rotate): a resampling of the image.
bool is_geometric(ImageOp op);

// ---- geometry --------------------------------------------------------------------------------------

/// An inverse affine matrix [a, b, c, d, e, f] (output pixel -> input pixel, relative to the centre).
using AffineMatrix = std::array<double, 6>;
/// torchvision's _get_inverse_affine_matrix(center, angle, translate, scale = 1, shear), in double, with
/// the same operations (so the same bits). Angles in degrees.
AffineMatrix inverse_affine_matrix(double center_x, double center_y, double angle, double tx, double ty,
                                   double shear_x, double shear_y);
/// The matrix of a geometric RandAugment op (see apply_image_op) for one sample of an h x w image.
/// Rotations by a multiple of 90 degrees that torchvision takes as a fast path (rot90 / clone) get the
/// exact matrix, which samples the same pixels.
AffineMatrix image_op_matrix(ImageOp op, double magnitude, int64_t h, int64_t w);
/// Each sample resampled through its matrix: torchvision's _affine_grid (float32 grid from the float32
/// matrix) and grid_sample(NEAREST, zeros, align_corners = False).
at::Tensor affine_sample(const at::Tensor& img, const std::vector<AffineMatrix>& matrices);

// ---- kernels with torchvision.transforms.v2.functional's parameters ------------------------------------

/// F.affine(img, angle, translate = [tx, ty], scale = 1, shear = [shear_x, shear_y] (degrees),
/// interpolation = NEAREST, fill = None, center): per sample. `center_x/center_y` are torchvision's
/// center_f, i.e. pixel coordinates relative to the image centre ([0, 0] is F.affine's center = None).
at::Tensor affine_nearest(const at::Tensor& img, const at::Tensor& angle, const at::Tensor& tx, const at::Tensor& ty,
                          const at::Tensor& shear_x, const at::Tensor& shear_y, const at::Tensor& center_x,
                          const at::Tensor& center_y);
/// F.rotate(img, angle (degrees, counter-clockwise), NEAREST, expand = False, center = None, fill = None).
at::Tensor rotate_nearest(const at::Tensor& img, const at::Tensor& angle);
at::Tensor adjust_brightness(const at::Tensor& img, const at::Tensor& factor);
at::Tensor adjust_saturation(const at::Tensor& img, const at::Tensor& factor);
at::Tensor adjust_contrast(const at::Tensor& img, const at::Tensor& factor);
at::Tensor adjust_sharpness(const at::Tensor& img, const at::Tensor& factor);
/// F.posterize(img, bits) for float images; bits are integers 0..8.
at::Tensor posterize(const at::Tensor& img, const at::Tensor& bits);
/// F.solarize(img, threshold): 1 - x where x >= threshold.
at::Tensor solarize(const at::Tensor& img, const at::Tensor& threshold);
at::Tensor autocontrast(const at::Tensor& img);
at::Tensor equalize(const at::Tensor& img);

// ---- the ops as RandAugment applies them -------------------------------------------------------------

/// `op` on every sample, with per-sample (signed) magnitudes [N] as torchvision's
/// _AutoAugmentBase._apply_image_or_video_transform receives them: ShearX/Y the shear factor (angle
/// atan(m), centred at the top-left corner), TranslateX/Y pixels (truncated to an integer), Rotate
/// degrees, Brightness/Color/Contrast/Sharpness the factor minus 1, Posterize bits (truncated), Solarize
/// the threshold in [0, 1]; ignored by Identity, AutoContrast and Equalize.
at::Tensor apply_image_op(ImageOp op, const at::Tensor& img, const at::Tensor& magnitude);

/// Each sample its own op: ops int64 [N] (ImageOp values) and magnitudes [N], both on the CPU. Batched per
/// kind of op: one grid_sample for every geometric sample, one kernel per colour op present.
at::Tensor apply_image_ops(const at::Tensor& img, const at::Tensor& ops, const at::Tensor& magnitude);

}  // namespace loom::augmentation
