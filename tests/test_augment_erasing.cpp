// random-erasing's rectangles over many samples (area within `scale`, aspect within `ratio`, a fraction p
// of the samples erased, noise ~ N(0, 1)); all three mixing/erasing ops reproducible from the seed and
// the identity at p = 0. The torchvision comparisons are in tests/test_augment_mixing.cpp.
#include "augment_ops.h"

#include <cmath>

namespace loom::test {
namespace {

class RandomErasingStats : public AugmentOps {};

TEST_F(RandomErasingStats, RectanglesFollowScaleRatioAndP) {
  constexpr int64_t n = 2000, side = 64;
  const auto gray = make_dataset({{"channels", int64_t{1}}, {"height", side}, {"width", side}});
  const auto a = op("random-erasing", {}, gray);  // p 0.5, scale [0.02, 0.33], ratio [0.3, 3.3], zeros
  const at::Tensor ones = at::ones({n, 1, side, side});
  const at::Tensor mask = applied(*a, {ones, at::zeros({n}, at::kLong), {}}, 42).x.eq(0).squeeze(1);  // [n, H, W]
  const at::Tensor rows = mask.any(2), cols = mask.any(1);  // [n, H], [n, W]
  const at::Tensor h = rows.sum(1), w = cols.sum(1), area = mask.sum({1, 2});
  const at::Tensor erased = area.gt(0);
  const double fraction = erased.to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(fraction, 0.5, 0.05) << "p = 0.5";
  EXPECT_TRUE(torch::equal(area, h * w)) << "every erased region is a rectangle";
  const at::Tensor span = [&](const at::Tensor& any, const at::Tensor& count) {
    const at::Tensor idx = at::arange(side, at::kLong).expand_as(any);
    const at::Tensor first = at::where(any, idx, side).amin(1), last = at::where(any, idx, -1).amax(1);
    return at::where(count.gt(0), last - first + 1, 0);
  }(rows, h);
  EXPECT_TRUE(torch::equal(span, h)) << "the erased rows are contiguous";
  const at::Tensor share = area.index({erased}).to(at::kDouble) / (side * side);
  // h and w are rounded: the area may leave [0.02, 0.33] by about (√(a·r) + √(a/r))/2 pixels.
  EXPECT_GE(share.min().item<double>(), 0.015);
  EXPECT_LE(share.max().item<double>(), 0.345);
  EXPECT_NEAR(share.mean().item<double>(), 0.175, 0.02) << "area fraction ~ U(0.02, 0.33)";
  const at::Tensor log_ratio = (h.index({erased}).to(at::kDouble) / w.index({erased})).log();
  EXPECT_GE(log_ratio.min().item<double>(), std::log(0.3) - 0.4);
  EXPECT_LE(log_ratio.max().item<double>(), std::log(3.3) + 0.4);
  EXPECT_NEAR(log_ratio.mean().item<double>(), 0.0, 0.1) << "log-uniform ratio: symmetric around 1";
  const at::Tensor top = at::where(rows, at::arange(side, at::kLong).expand_as(rows), side).amin(1).index({erased});
  EXPECT_EQ(top.min().item<int64_t>(), 0) << "rectangles reach the top edge";
  EXPECT_TRUE(h.lt(side).all().item<bool>() && w.lt(side).all().item<bool>()) << "h < H and w < W, as torchvision";
}

TEST_F(RandomErasingStats, RandomValueIsStandardNormalPerPixelAndChannel) {
  const auto a = op("random-erasing", {{"value", std::string("random")}, {"p", 1.0}});
  const at::Tensor x = at::full({400, 3, 16, 20}, 7.0f);
  const at::Tensor out = applied(*a, {x, at::zeros({400}, at::kLong), {}}, 3).x;
  const at::Tensor changed = out.ne(7.0f);
  const at::Tensor noise = out.masked_select(changed);
  ASSERT_GT(noise.numel(), 10000);
  EXPECT_NEAR(noise.mean().item<double>(), 0.0, 0.03);
  EXPECT_NEAR(noise.std().item<double>(), 1.0, 0.03);
  EXPECT_TRUE(torch::equal(changed.select(1, 0), changed.select(1, 2))) << "one rectangle for every channel";
  EXPECT_FALSE(torch::equal(out.select(1, 0), out.select(1, 1))) << "noise differs across channels";
  EXPECT_TRUE(torch::equal(x, at::full({400, 3, 16, 20}, 7.0f))) << "the input tensor is not written";
}

TEST_F(RandomErasingStats, RefusesBadParameters) {
  EXPECT_NE(refusal("random-erasing", {{"ratio", std::vector<double>{0.0, 2.0}}}).find("0 < min <= max"),
            std::string::npos);
  EXPECT_NE(refusal("random-erasing", {{"scale", std::vector<double>{0.1}}}).find("scale must be [min, max]"),
            std::string::npos);
  EXPECT_EQ(refusal("random-erasing", {{"scale", std::vector<double>{0.1, 0.1}}}), "");
}

class MixingOps : public AugmentOps {};

TEST_F(MixingOps, ReproducibleFromTheSeed) {
  for (const char* name : {"random-erasing", "mixup", "cutmix"}) {
    SCOPED_TRACE(name);
    const auto a = op(name, {{"p", 1.0}});
    const AugmentBatch in = random_batch(16, 5);
    const AugmentBatch one = applied(*a, in, 77), two = applied(*a, in, 77), other = applied(*a, in, 78);
    EXPECT_TRUE(torch::equal(one.x, two.x) && torch::equal(one.y, two.y) && torch::equal(one.w, two.w));
    EXPECT_FALSE(torch::equal(one.x, other.x)) << "another seed, the same result";
  }
}

TEST_F(MixingOps, ProbabilityZeroLeavesTheInputs) {
  const AugmentBatch in = random_batch(16, 8);
  const at::Tensor onehot = at::one_hot(in.y, kClasses).to(at::kFloat);
  for (const char* name : {"random-erasing", "mixup", "cutmix"}) {
    SCOPED_TRACE(name);
    const auto a = op(name, {{"p", 0.0}});
    for (uint64_t seed = 0; seed < 5; ++seed) {
      const AugmentBatch out = applied(*a, in, seed);
      EXPECT_TRUE(torch::equal(out.x, in.x));
      EXPECT_TRUE(torch::equal(out.w, in.w));
      EXPECT_TRUE(torch::equal(out.y, std::string(name) == "random-erasing" ? in.y : onehot));
    }
  }
}

}  // namespace
}  // namespace loom::test
