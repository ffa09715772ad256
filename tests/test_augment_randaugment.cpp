// The randaugment and trivial-augment ops, created in-process from their built plugin libraries: per-sample
// draws, reproducibility from the generator, p, views of a cache, and the factory's refusal of a dataset
// without a pixel affine. Kernel parity with torchvision: tests/test_augment_image_ops.cpp.
#include "test_util.h"

#include "augmentation/common/auto_augment.h"
#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <loom/augmentation.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace loom::test {
namespace {

/// A dataset of normalised images that declares its pixel affine, like fashion-mnist or image-folder.
class PixelImages final : public Dataset {
 public:
  explicit PixelImages(int64_t channels) {
    spec_.shape = {channels, 20, 24};
    spec_.num_classes = 2;
    for (int64_t c = 0; c < channels; ++c) {
      spec_.pixel_scale.push_back(1.0 / (255.0 * (0.25 + 0.05 * static_cast<double>(c))));
      spec_.pixel_shift.push_back(-(0.4 + 0.1 * static_cast<double>(c)) / (0.25 + 0.05 * static_cast<double>(c)));
    }
  }
  SampleSpec spec() const override { return spec_; }
  int64_t size() const override { return 0; }
  at::Tensor indices(Split) const override { return at::zeros({0}, at::kLong); }
  at::Tensor labels() const override { return at::zeros({0}, at::kLong); }
  at::Tensor load(const at::Tensor&) const override { return {}; }
  std::string fingerprint() const override { return "pixel-images/1;test"; }

  /// n samples from random uint8 pixels, through the declared affine.
  at::Tensor batch(int64_t n, uint64_t seed) const {
    at::Generator g = at::detail::createCPUGenerator(seed);
    std::vector<int64_t> shape{n};
    shape.insert(shape.end(), spec_.shape.begin(), spec_.shape.end());
    return from_pixels(at::randint(0, 256, shape, g, at::TensorOptions().dtype(at::kLong)), spec_);
  }

 private:
  SampleSpec spec_;
};

class RandAugmentPlugins : public ::testing::Test {
 protected:
  void SetUp() override {
    registry.scan({LOOM_TEST_PLUGIN_DIR});
    for (const char* name : {"randaugment", "trivial-augment", "synthetic"})
      ASSERT_NE(registry.find(name == std::string("synthetic") ? Kind::Dataset : Kind::Augmentation, name), nullptr)
          << name << " is not built";
  }
  Params params_of(Kind kind, const std::string& name, const std::map<std::string, Value>& given) {
    std::map<std::string, Value> values;
    for (const auto& spec : registry.find(kind, name)->info.params)
      if (spec.default_value) values[spec.name] = *spec.default_value;
    for (const auto& [k, v] : given) values[k] = v;
    return Params(values);
  }
  std::shared_ptr<Augmentation> make(const std::string& name, std::shared_ptr<Dataset> data,
                                     const std::map<std::string, Value>& given = {}) {
    params = params_of(Kind::Augmentation, name, given);
    return registry.create<Augmentation>(*registry.find(Kind::Augmentation, name), CreateContext{params, ctx, std::move(data)});
  }
  host::Registry registry;
  host::HostLogger logger;
  host::HostRunContext ctx{logger, c10::kCPU, 1, 1, {}, fs::temp_directory_path() / "loom-test-cache"};
  Params params;
};

/// The op applied to x with a generator seeded `seed`.
at::Tensor applied(const Augmentation& op, const at::Tensor& x, uint64_t seed) {
  AugmentBatch batch{x, at::zeros({x.size(0)}, at::kLong), {}};
  at::Generator g = at::detail::createCPUGenerator(seed);
  op.apply(batch, g);
  return batch.x;
}

void expect_reproducible(const Augmentation& op, const at::Tensor& x) {
  auto run_with = [&](uint64_t seed) { return applied(op, x, seed); };
  const at::Tensor a = run_with(11);
  EXPECT_EQ(a.sizes(), x.sizes());
  EXPECT_EQ(a.scalar_type(), x.scalar_type());
  EXPECT_TRUE(at::equal(a, run_with(11))) << "the same generator seed gives the same batch";
  EXPECT_FALSE(at::equal(a, run_with(12))) << "another seed gives another batch";
  EXPECT_FALSE(at::equal(a, x)) << "p = 1 changes the batch";
  // Per sample: samples differ in what happened to them (not one op for the whole batch).
  const at::Tensor changed = (a - x).abs().flatten(1).amax(1).gt(1e-4);
  EXPECT_GT(changed.sum().item<int64_t>(), 1);
}

TEST_F(RandAugmentPlugins, RandAugmentIsReproduciblePerSample) {
  for (int64_t c : {1, 3}) {
    auto data = std::make_shared<PixelImages>(c);
    expect_reproducible(*make("randaugment", data), data->batch(16, 5));
    expect_reproducible(*make("randaugment", data, {{"magnitude_std", 0.5}, {"num_ops", int64_t{3}}}), data->batch(16, 5));
  }
}

TEST_F(RandAugmentPlugins, TrivialAugmentIsReproduciblePerSample) {
  for (int64_t c : {1, 3}) {
    auto data = std::make_shared<PixelImages>(c);
    expect_reproducible(*make("trivial-augment", data), data->batch(16, 6));
  }
}

TEST_F(RandAugmentPlugins, PZeroLeavesTheBatchUnchanged) {
  auto data = std::make_shared<PixelImages>(3);
  const at::Tensor x = data->batch(8, 1);
  for (const char* name : {"randaugment", "trivial-augment"}) {
    const auto op = make(name, data, {{"p", 0.0}});
    EXPECT_TRUE(at::equal(applied(*op, x, 3), x)) << name;
  }
  EXPECT_TRUE(at::equal(applied(*make("randaugment", data, {{"num_ops", int64_t{0}}}), x, 3), x));
}

TEST_F(RandAugmentPlugins, CacheViewsAreReadNotWritten) {
  auto data = std::make_shared<PixelImages>(3);
  // A strided view, as a cache hands out: every other sample of a channels-last block.
  const at::Tensor block = data->batch(16, 2).permute({0, 2, 3, 1}).contiguous();
  const at::Tensor view = block.permute({0, 3, 1, 2}).slice(0, 0, 16, 2);
  ASSERT_FALSE(view.is_contiguous());
  const at::Tensor before = block.clone();
  for (const char* name : {"randaugment", "trivial-augment"}) {
    const auto op = make(name, data);
    EXPECT_TRUE(at::equal(applied(*op, view, 4), applied(*op, view.contiguous(), 4))) << name;
    EXPECT_TRUE(at::equal(block, before)) << name << " wrote into its input";
  }
}

TEST_F(RandAugmentPlugins, DatasetWithoutPixelAffineIsRefused) {
  const host::Feature* synthetic = registry.find(Kind::Dataset, "synthetic");
  const Params p = params_of(Kind::Dataset, "synthetic", {});
  auto data = registry.create<Dataset>(*synthetic, CreateContext{p, ctx, nullptr});
  ASSERT_TRUE(data->spec().pixel_scale.empty());
  for (const char* name : {"randaugment", "trivial-augment"}) {
    try {
      make(name, data);
      ADD_FAILURE() << name << " accepted a dataset without a pixel affine";
    } catch (const std::exception& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(std::string(name) + " needs a dataset that declares its pixel affine (pixel_scale/pixel_shift), "
                                              "e.g. fashion-mnist or image-folder; 'synthetic' declares none"),
                std::string::npos) << what;
      EXPECT_EQ(what.find("Exception raised from"), std::string::npos) << "no LibTorch backtrace: " << what;
    }
  }
  try {
    make("randaugment", std::make_shared<PixelImages>(3), {{"magnitude", int64_t{31}}});
    ADD_FAILURE() << "magnitude 31 of 31 bins accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("magnitude = 31 must be below num_magnitude_bins = 31"), std::string::npos) << e.what();
  }
}

// The draws: per sample its own ops, bins and signs; Identity where a sample is not chosen.
TEST(RandAugmentDraws, PerSampleOpsMagnitudesAndSigns) {
  augmentation::AutoAugmentSettings s;
  s.name = "randaugment";
  const int64_t n = 512;
  at::Generator g = at::detail::createCPUGenerator(1);
  const auto d = augmentation::draw_auto_augment(s, n, 32, 32, g);
  ASSERT_EQ(d.ops.sizes(), (std::vector<int64_t>{2, n}));
  EXPECT_EQ(std::get<0>(at::_unique(d.ops)).numel(), augmentation::kNumImageOps) << "every op drawn";
  const at::Tensor table = augmentation::magnitude_table(s.space, 31, 32, 32).select(1, 9).nan_to_num(0.0);
  EXPECT_TRUE(at::equal(d.magnitudes.abs(), table.index_select(0, d.ops.view(-1)).view({2, n}))) << "bin 9, signed";
  EXPECT_GT(d.magnitudes.lt(0).sum().item<int64_t>(), n / 4) << "signs drawn per sample";

  s.p = 0.5;
  s.magnitude_std = 1.0;
  at::Generator g2 = at::detail::createCPUGenerator(1);
  const auto noisy = augmentation::draw_auto_augment(s, n, 32, 32, g2);
  const int64_t chosen = noisy.chosen.sum().item<int64_t>();
  EXPECT_GT(chosen, n / 4);
  EXPECT_LT(chosen, 3 * n / 4);
  EXPECT_TRUE(noisy.ops.masked_select(noisy.chosen.logical_not().expand({2, n})).eq(0).all().item<bool>());
  // Noisy bins stay inside each op's range, and leave whole bins.
  const at::Tensor strongest = augmentation::magnitude_table(s.space, 31, 32, 32).nan_to_num(0.0).abs().amax(1);
  EXPECT_TRUE(noisy.magnitudes.abs().le(strongest.index_select(0, noisy.ops.view(-1)).view({2, n})).all().item<bool>());
  const at::Tensor rotations = noisy.magnitudes.masked_select(noisy.ops.eq(static_cast<int64_t>(augmentation::ImageOp::Rotate)));
  EXPECT_GT(std::get<0>(at::_unique(rotations.abs())).numel(), 10) << "magnitude_std draws fractional bins";
}

TEST(TrivialAugmentDraws, OneOpAtAUniformBin) {
  augmentation::AutoAugmentSettings s;
  s.name = "trivial-augment";
  s.space = augmentation::OpSpace::TrivialAugmentWide;
  s.num_ops = 1;
  s.magnitude = -1;
  at::Generator g = at::detail::createCPUGenerator(2);
  const auto d = augmentation::draw_auto_augment(s, 2048, 32, 32, g);
  ASSERT_EQ(d.ops.sizes(), (std::vector<int64_t>{1, 2048}));
  const at::Tensor rotations = d.magnitudes.masked_select(d.ops.eq(static_cast<int64_t>(augmentation::ImageOp::Rotate)));
  EXPECT_LE(rotations.abs().max().item<double>(), 135.0);
  EXPECT_GT(rotations.abs().max().item<double>(), 120.0) << "the wide range, bins drawn uniformly";
  EXPECT_GT(std::get<0>(at::_unique(rotations)).numel(), 20);
}

}  // namespace
}  // namespace loom::test
