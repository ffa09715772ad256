// The augmentation kind's host side and its two simple ops: random-crop and flip against torchvision's
// functional pad/crop/flip on the same images and draws, the pipelines' names, and the old dataset keys
// refused with the tables to write instead.
#include "test_util.h"

#include "loop/augment_pipelines.h"
#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

namespace loom::test {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class SimpleOps : public ::testing::Test {
 protected:
  void SetUp() override {
    registry.scan({LOOM_TEST_PLUGIN_DIR});
    const host::Feature* f = registry.find(Kind::Dataset, "fashion-mnist");
    ASSERT_NE(f, nullptr);
    data_params = Params({{"root", std::string("/usr/share/datasets/fashion-mnist")}, {"labeled_per_class", int64_t{0}},
                          {"labeled_fraction", 1.0}, {"val_size", int64_t{0}}, {"normalize", std::string("standard")},
                          {"split_seed", int64_t{0}}});
    dataset = registry.create<Dataset>(*f, CreateContext{data_params, ctx, nullptr});
    x = dataset->load(torch::arange(6));
    y = dataset->labels().narrow(0, 0, 6);
  }
  std::shared_ptr<Augmentation> op(const std::string& name, std::map<std::string, Value> values) {
    const host::Feature* f = registry.find(Kind::Augmentation, name);
    EXPECT_NE(f, nullptr) << name;
    for (const auto& spec : f->info.params)
      if (!values.count(spec.name) && spec.default_value) values[spec.name] = *spec.default_value;
    op_params = Params(values);
    return registry.create<Augmentation>(*f, CreateContext{op_params, ctx, dataset});
  }
  /// torchvision's result for the unit-pixel images of x, cropped at (top, left) and flipped per `flip`.
  nlohmann::json reference(const at::Tensor& unit, int64_t padding, const std::string& mode, const at::Tensor& top,
                           const at::Tensor& left, const at::Tensor& flip, bool vertical) {
    nlohmann::json in;
    in["images"] = nlohmann::json::array();
    const at::Tensor u = unit.contiguous();
    for (int64_t i = 0; i < u.size(0); ++i) {
      nlohmann::json img = nlohmann::json::array();
      for (int64_t c = 0; c < u.size(1); ++c) {
        nlohmann::json plane = nlohmann::json::array();
        for (int64_t r = 0; r < u.size(2); ++r) {
          const at::Tensor row = u[i][c][r];
          plane.push_back(std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel()));
        }
        img.push_back(plane);
      }
      in["images"].push_back(img);
    }
    in["padding"] = padding;
    in["padding_mode"] = mode;
    in["top"] = std::vector<int64_t>(top.data_ptr<int64_t>(), top.data_ptr<int64_t>() + top.numel());
    in["left"] = std::vector<int64_t>(left.data_ptr<int64_t>(), left.data_ptr<int64_t>() + left.numel());
    std::vector<bool> flips;
    for (int64_t i = 0; i < flip.numel(); ++i) flips.push_back(flip[i].item<bool>());
    in["flip"] = flips;
    in["vertical"] = vertical;
    write_file(tmp / "in.json", in.dump());
    const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " + LOOM_TEST_SOURCE_DIR +
                                 "/tests/python/crop_flip_reference.py " + (tmp / "in.json").string());
    EXPECT_EQ(py.exit_code, 0) << py.output;
    return nlohmann::json::parse(py.output);
  }
  static at::Tensor tensor_of(const nlohmann::json& j, const at::Tensor& like) {
    std::vector<float> flat;
    for (const auto& img : j)
      for (const auto& plane : img)
        for (const auto& row : plane)
          for (const auto& v : row) flat.push_back(v.get<float>());
    return torch::tensor(flat).view(like.sizes());
  }

  TempDir tmp;
  host::Registry registry;
  host::HostLogger logger;
  host::HostRunContext ctx{logger, c10::kCPU, 1, 1, {}, fs::temp_directory_path() / "loom-test-cache"};
  Params data_params, op_params;
  std::shared_ptr<Dataset> dataset;
  at::Tensor x, y;
};

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

TEST_F(SimpleOps, RandomCropEqualsTorchvisionPadThenCrop) {
  for (const std::string mode : {"zero", "reflect"}) {
    SCOPED_TRACE(mode);
    const int64_t padding = 3;
    auto crop = op("random-crop", {{"padding", padding}, {"padding_mode", mode}});
    AugmentBatch b{x, y, {}};
    at::Generator g = seeded(11);
    crop->apply(b, g);
    // The op's draws, replayed: which samples (all, p = 1), then the rows' and the columns' offsets.
    at::Generator replay = seeded(11);
    (void)at::rand({6}, replay, at::TensorOptions().dtype(at::kDouble));
    const at::Tensor top = at::randint(0, 2 * padding + 1, {6}, replay), left = at::randint(0, 2 * padding + 1, {6}, replay);
    EXPECT_GT(std::get<0>(at::unique_dim(at::stack({top, left}, 1), 0)).size(0), 1) << "the offsets vary per sample";
    const SampleSpec spec = dataset->spec();
    const nlohmann::json ref = reference(to_unit_pixels(x, spec), padding, mode == "zero" ? "constant" : "reflect", top,
                                         left, at::zeros({6}, at::kBool), false);
    const at::Tensor expected = tensor_of(ref["crop"], x);
    EXPECT_TRUE(at::allclose(to_unit_pixels(b.x, spec), expected, 0, 1e-6))
        << (to_unit_pixels(b.x, spec) - expected).abs().max().item<float>();
    EXPECT_TRUE(torch::equal(b.y, y)) << "targets are untouched";
  }
}

TEST_F(SimpleOps, RandomCropWithPZeroOrNoPaddingLeavesTheBatchAlone) {
  for (auto values : {std::map<std::string, Value>{{"p", 0.0}}, std::map<std::string, Value>{{"padding", int64_t{0}}}}) {
    auto crop = op("random-crop", values);
    AugmentBatch b{x, y, {}};
    at::Generator g = seeded(1);
    crop->apply(b, g);
    EXPECT_TRUE(torch::equal(b.x, x));
  }
}

TEST_F(SimpleOps, FlipEqualsTorchvisionFlipPerSample) {
  for (const bool vertical : {false, true}) {
    auto flip = op("flip", {{"direction", std::string(vertical ? "vertical" : "horizontal")}});
    AugmentBatch b{x, y, {}};
    at::Generator g = seeded(4);
    flip->apply(b, g);
    at::Generator replay = seeded(4);
    const at::Tensor chosen = at::rand({6}, replay, at::TensorOptions().dtype(at::kDouble)).lt(0.5);
    ASSERT_GT(chosen.sum().item<int64_t>(), 0);
    ASSERT_LT(chosen.sum().item<int64_t>(), 6);
    const at::Tensor zeros = at::zeros({6}, at::kLong);
    const nlohmann::json ref = reference(x, 0, "constant", zeros, zeros, chosen, vertical);
    EXPECT_TRUE(torch::equal(b.x, tensor_of(ref["flip"], x)));
  }
}

TEST_F(SimpleOps, ReflectPaddingWiderThanTheImageIsRefused) {
  try {
    op("random-crop", {{"padding", int64_t{28}}, {"padding_mode", std::string("reflect")}});
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_TRUE(contains(e.what(), "padding < the image's height and width (28x28)")) << e.what();
  }
}

TEST_F(SimpleOps, EveryOpOnCudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  // Each op's draws come from the CPU generator whatever the device, so the same seed must give the same
  // batch on both (nearest-neighbour geometry and per-sample blends agree to float rounding).
  for (const host::Feature* f : registry.features(Kind::Augmentation)) {
    SCOPED_TRACE(f->info.name);
    auto o = op(f->info.name, {});
    AugmentBatch cpu{x, y, {}}, gpu{x.to(at::kCUDA), y.to(at::kCUDA), {}};
    at::Generator g1 = seeded(9), g2 = seeded(9);
    o->apply(cpu, g1);
    o->apply(gpu, g2);
    EXPECT_TRUE(gpu.x.is_cuda());
    EXPECT_TRUE(at::allclose(gpu.x.cpu(), cpu.x, 1e-5, 1e-5)) << (gpu.x.cpu() - cpu.x).abs().max().item<float>();
    EXPECT_TRUE(at::allclose(gpu.y.cpu().to(at::kDouble), cpu.y.to(at::kDouble), 1e-6, 1e-6));
  }
}

TEST(AugmentPipelines, UnknownNamesListThePipelinesTheConfigDefines) {
  host::AugmentPipelines pipelines;
  EXPECT_EQ(pipelines.find("default"), nullptr) << "no tables: the default pipeline is empty";
  try {
    pipelines.find("strong");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "no [[augmentation]] table has pipeline = \"strong\" (the config defines no augmentation)"))
        << e.what();
  }
}

TEST(AugmentConfig, OldDatasetKeysAreRefusedWithTheTablesToWrite) {
  TempDir dir;
  write_file(dir / "c.toml", "[dataset]\nplugin = \"fashion-mnist\"\naugment = true\npad = 2\n[model]\nplugin = \"cnn\"\n");
  const CommandResult r = loom("check " + (dir / "c.toml").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "c.toml:3:1: error: 'augment' in [dataset] (plugin 'fashion-mnist') is no longer a parameter"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "c.toml:4:1: error: 'pad' in [dataset]")) << r.output;
  EXPECT_TRUE(contains(r.output, "[[augmentation]] plugin = \"random-crop\" padding = <pad> followed by [[augmentation]] "
                                 "plugin = \"flip\""))
      << r.output;
}

TEST(AugmentConfig, PipelineNamesAreCheckedAndKeptInTheResolvedConfig) {
  TempDir dir;
  write_file(dir / "bad.toml", "[dataset]\nplugin = \"synthetic\"\n[model]\nplugin = \"mlp\"\n"
                               "[[augmentation]]\nplugin = \"flip\"\npipeline = \"Strong One\"\n");
  const CommandResult bad = loom("check " + (dir / "bad.toml").string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(contains(bad.output, "bad.toml:7:12: error: 'pipeline' in [augmentation[0]] must name a pipeline")) << bad.output;

  write_file(dir / "good.toml", "[run]\nthreads = 1\ndevice = \"cpu\"\noutput_dir = \"out\"\n[dataset]\nplugin = \"synthetic\"\n"
                                "samples = 128\n[model]\nplugin = \"mlp\"\nhidden = [8]\n[[augmentation]]\nplugin = \"flip\"\n"
                                "[[augmentation]]\nplugin = \"flip\"\ndirection = \"vertical\"\npipeline = \"strong\"\n"
                                "[loss]\nlabel_smoothing = 0.1\n");
  const CommandResult good = loom("run " + (dir / "good.toml").string());
  ASSERT_EQ(good.exit_code, 0) << good.output;
  EXPECT_TRUE(contains(good.output, "augments its batches with pipeline 'default': flip")) << good.output;
  const fs::path run_dir = only_run_dir(dir / "out", "loom");
  const std::string resolved = read_file(run_dir / "config.resolved.toml");
  EXPECT_TRUE(contains(resolved, "pipeline = 'strong'") || contains(resolved, "pipeline = \"strong\"")) << resolved;
  EXPECT_TRUE(contains(resolved, "label_smoothing = 0.1")) << resolved;
}

}  // namespace
}  // namespace loom::test
