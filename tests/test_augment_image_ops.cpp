// The batched image ops of RandAugment / TrivialAugment (plugins/augmentation/common/image_ops.h) against
// torchvision.transforms.v2.functional (tests/python/augment_reference.py), op by op, each sample with its
// own magnitude, on random images quantised to k/255 (N = 4; 1 and 3 channels; square and not).
//
// Measured (max |loom - torchvision|, float32, on the CPU): 0 — bit for bit — for every op but Color,
// Contrast and Sharpness, 6e-8 (one float ulp near 1; the test allows 1e-6): torch's add(alpha) in
// _blend and adjust_sharpness is a fused multiply-add, here two rounded products (per-sample factors are
// tensors). Geometric ops match exactly, rotations by multiples of 90 degrees (torchvision's rot90 fast
// path) and a non-square 27x32 batch included.
#include "test_util.h"

#include "augmentation/common/auto_augment.h"
#include "augmentation/common/image_ops.h"
#include "common/npy/npy_tensor.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <iostream>

namespace loom::test {
namespace {

using augmentation::ImageOp;

struct Case {
  ImageOp op;
  std::vector<double> magnitudes;  // one per sample
};

// Signed magnitudes as RandAugment / TrivialAugmentWide hand them to the ops (their bins, and edges:
// rotations by multiples of 90 degrees, truncated translations, 0 and 8 bits, thresholds 0 and 1).
const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {ImageOp::Identity, {0, 0, 0, 0}},
      {ImageOp::ShearX, {0.09, -0.3, 0.99, -0.5}},
      {ImageOp::ShearY, {-0.09, 0.3, -0.99, 0.033}},
      {ImageOp::TranslateX, {4.350453376770, -14.5, 32.0, 0.7}},
      {ImageOp::TranslateY, {-4.350453376770, 14.5, -32.0, 3.0}},
      {ImageOp::Rotate, {9.0, -4.5, 90.0, -90.0}},
      {ImageOp::Rotate, {180.0, 135.0, -135.0, 0.0}},
      {ImageOp::Brightness, {0.2699999809265137, -0.2699999809265137, 0.99, -0.99}},
      {ImageOp::Color, {0.2699999809265137, -0.2699999809265137, 0.99, -0.99}},
      {ImageOp::Contrast, {0.2699999809265137, -0.2699999809265137, 0.99, -0.99}},
      {ImageOp::Sharpness, {0.2699999809265137, -0.2699999809265137, 0.99, -0.99}},
      {ImageOp::Posterize, {8, 6, 4, 2}},
      {ImageOp::Posterize, {7, 5, 1, 0}},
      {ImageOp::Solarize, {1.0, 0.6999999880790710, 0.9333333373069763, 0.0}},
      {ImageOp::AutoContrast, {0, 0, 0, 0}},
      {ImageOp::Equalize, {0, 0, 0, 0}},
  };
  return c;
}

double tolerance(ImageOp op) {
  return op == ImageOp::Color || op == ImageOp::Contrast || op == ImageOp::Sharpness ? 1e-6 : 0.0;
}

/// 4 random images of k/255 values; sample 2 takes only 3 values, sample 3's first channel is constant
/// (AutoContrast's and Equalize's special cases).
at::Tensor test_images(int64_t c, int64_t h, int64_t w, uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  at::Tensor px = at::randint(0, 256, {4, c, h, w}, g, at::TensorOptions().dtype(at::kLong));
  px[2] = at::tensor({int64_t{0}, int64_t{64}, int64_t{255}}).index_select(0, at::randint(0, 3, {c * h * w}, g)).view({c, h, w});
  px[3][0].fill_(128);
  return px.to(at::kFloat).div_(255);
}

/// The inputs, written with the cases for augment_reference.py, and torchvision's results (once per run).
struct Reference {
  Reference() {
    inputs = {{"grey", test_images(1, 32, 32, 1)}, {"rgb", test_images(3, 32, 32, 2)}, {"rgb_27x32", test_images(3, 27, 32, 3)}};
    std::vector<int64_t> ops;
    at::Tensor mags = at::empty({static_cast<int64_t>(cases().size()), 4}, at::kDouble);
    for (size_t k = 0; k < cases().size(); ++k) {
      ops.push_back(static_cast<int64_t>(cases()[k].op));
      mags[static_cast<int64_t>(k)] = at::tensor(cases()[k].magnitudes, at::kDouble);
    }
    npy::save_tensor(dir.path() / "ops.npy", at::tensor(ops, at::kLong));
    npy::save_tensor(dir.path() / "mags.npy", mags);
    for (const auto& [name, images] : inputs) npy::save_tensor(dir.path() / ("in_" + name + ".npy"), images);
    const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR "/tests/python/augment_reference.py " +
                                 dir.path().string());
    if (py.exit_code == 3) skipped = py.output;  // no torchvision
    EXPECT_TRUE(py.exit_code == 0 || py.exit_code == 3) << py.output;
    if (py.exit_code == 0)
      for (const auto& [name, images] : inputs) outputs[name] = npy::load_tensor(dir.path() / ("ref_" + name + ".npy"));
  }
  TempDir dir;
  std::map<std::string, at::Tensor> inputs, outputs;  // by input name; outputs [cases, N, C, H, W]
  std::string skipped;                                // why there is no reference
};

const Reference& reference() {
  static const Reference ref;
  return ref;
}

TEST(ImageOps, EveryOpMatchesTorchvision) {
  const Reference& ref = reference();
  if (!ref.skipped.empty()) GTEST_SKIP() << ref.skipped;
  std::map<std::string, double> worst;  // op name -> max |diff| over inputs and cases
  for (const auto& [name, images] : ref.inputs) {
    ASSERT_TRUE(ref.outputs.count(name)) << name;
    for (size_t k = 0; k < cases().size(); ++k) {
      const Case& c = cases()[k];
      const at::Tensor expected = ref.outputs.at(name)[static_cast<int64_t>(k)];
      const at::Tensor mine = augmentation::apply_image_op(c.op, images, at::tensor(c.magnitudes, at::kDouble));
      ASSERT_EQ(mine.sizes(), expected.sizes());
      const double diff = (mine - expected).abs().max().item<double>();
      worst[augmentation::image_op_name(c.op)] = std::max(worst[augmentation::image_op_name(c.op)], diff);
      EXPECT_LE(diff, tolerance(c.op)) << augmentation::image_op_name(c.op) << " on " << name << ", case " << k;
    }
  }
  for (const auto& [op, diff] : worst) std::cout << "[ parity   ] " << op << ": max |diff| " << diff << "\n";
}

// Each sample its own op: one batched call per kind of op gives what each op gives alone.
TEST(ImageOps, MixedOpsPerSampleMatchTorchvision) {
  const Reference& ref = reference();
  if (!ref.skipped.empty()) GTEST_SKIP() << ref.skipped;
  const auto k_count = static_cast<int64_t>(cases().size());
  for (const auto& [name, images] : ref.inputs) {
    for (int64_t shift = 0; shift < k_count; ++shift) {
      std::vector<int64_t> ops;
      std::vector<double> mags;
      std::vector<at::Tensor> expected;
      double tol = 0;
      for (int64_t i = 0; i < 4; ++i) {
        const int64_t k = (shift + 5 * i) % k_count;
        ops.push_back(static_cast<int64_t>(cases()[static_cast<size_t>(k)].op));
        mags.push_back(cases()[static_cast<size_t>(k)].magnitudes[static_cast<size_t>(i)]);
        expected.push_back(ref.outputs.at(name)[k][i]);
        tol = std::max(tol, tolerance(cases()[static_cast<size_t>(k)].op));
      }
      const at::Tensor mine = augmentation::apply_image_ops(images, at::tensor(ops, at::kLong), at::tensor(mags, at::kDouble));
      EXPECT_LE((mine - at::stack(expected)).abs().max().item<double>(), tol) << name << ", shift " << shift;
    }
  }
}

TEST(ImageOps, MagnitudeBinsMatchTorchvision) {
  const Reference& ref = reference();
  if (!ref.skipped.empty()) GTEST_SKIP() << ref.skipped;
  for (const auto& [bins, h, w] : std::vector<std::array<int64_t, 3>>{{31, 32, 32}, {11, 28, 36}}) {
    for (const auto& [space, tag] : {std::pair{augmentation::OpSpace::RandAugment, "ra"},
                                     std::pair{augmentation::OpSpace::TrivialAugmentWide, "ta"}}) {
      const std::string file = std::string("table_") + tag + "_" + std::to_string(bins) + "_" + std::to_string(h) + "_" +
                               std::to_string(w) + ".npy";
      const at::Tensor expected = npy::load_tensor(ref.dir.path() / file);
      const at::Tensor mine = augmentation::magnitude_table(space, bins, h, w);
      EXPECT_TRUE(at::equal(mine.isnan(), expected.isnan())) << file;
      EXPECT_TRUE(at::equal(mine.nan_to_num(-1), expected.nan_to_num(-1))) << file << "\n" << mine << "\n" << expected;
    }
  }
}

TEST(ImageOps, InputsAreNotWrittenAndViewsWork) {
  const at::Tensor base = test_images(3, 16, 16, 9).permute({0, 2, 3, 1}).contiguous();  // channels last
  const at::Tensor view = base.permute({0, 3, 1, 2});                                   // [N, C, H, W], strided
  ASSERT_FALSE(view.is_contiguous());
  const at::Tensor before = base.clone();
  for (int64_t op = 0; op < augmentation::kNumImageOps; ++op) {
    const at::Tensor m = at::full({4}, op == static_cast<int64_t>(ImageOp::Posterize) ? 3.0 : 0.4, at::kDouble);
    const at::Tensor out = augmentation::apply_image_op(static_cast<ImageOp>(op), view, m);
    EXPECT_TRUE(at::equal(out, augmentation::apply_image_op(static_cast<ImageOp>(op), view.contiguous(), m)))
        << augmentation::image_op_name(static_cast<ImageOp>(op));
  }
  EXPECT_TRUE(at::equal(base, before));
  EXPECT_THROW(augmentation::apply_image_op(ImageOp::Posterize, view, at::full({4}, 9.0, at::kDouble)), std::invalid_argument);
  EXPECT_THROW(augmentation::apply_image_op(ImageOp::Rotate, view, at::zeros({3}, at::kDouble)), std::invalid_argument);
  EXPECT_THROW(augmentation::apply_image_op(ImageOp::Color, at::zeros({4, 2, 8, 8}), at::zeros({4}, at::kDouble)),
               std::invalid_argument);
}

// On a GPU the same draws give the same images (to float rounding: cuDNN's convolution, cuBLAS's bmm).
TEST(ImageOps, CudaMatchesCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const at::Tensor images = test_images(3, 32, 32, 4);
  const at::Tensor ops = at::arange(augmentation::kNumImageOps, at::kLong).repeat({2}).slice(0, 0, 4 * 7);
  const at::Tensor batch = images.repeat({7, 1, 1, 1});
  const at::Tensor mags = at::linspace(-0.9, 0.9, 28, at::kDouble).where(ops.ne(static_cast<int64_t>(ImageOp::Posterize)),
                                                                          at::full({28}, 3.0, at::kDouble));
  const at::Tensor cpu = augmentation::apply_image_ops(batch, ops, mags);
  const at::Tensor cuda = augmentation::apply_image_ops(batch.cuda(), ops, mags).cpu();
  EXPECT_LE((cpu - cuda).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace loom::test
