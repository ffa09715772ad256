// The model zoo's options and errors: initialisation as torchvision, width/zero_init_residual/dropout,
// invalid architectures, and the ways a weights file can fail to match (files written by
// tests/python/model_zoo_reference.py --weight-files; parity of loaded weights is in test_model_zoo.cpp).
#include "model_zoo_fixture.h"

namespace loom::test {
namespace {

using ModelZoo = ModelZooTest;

at::Tensor param(torch::nn::Module& m, const std::string& name) {
  const auto params = m.named_parameters();
  if (const at::Tensor* p = params.find(name)) return *p;
  throw std::runtime_error("the model has no parameter '" + name + "'");
}

TEST_F(ModelZoo, ResNetNamesAndInitialisationAsTorchvision) {
  auto model = create("resnet", {{"depth", int64_t{18}}});
  auto names = model->named_parameters().keys();
  // torchvision's state_dict order: stem, then layer by layer, block by block, fc last.
  ASSERT_GE(names.size(), 4u);
  EXPECT_EQ(names[0], "conv1.weight");
  EXPECT_EQ(names[1], "bn1.weight");
  EXPECT_EQ(names[3], "layer1.0.conv1.weight");
  EXPECT_EQ(names.back(), "fc.bias");
  EXPECT_NE(model->named_parameters().find("layer2.0.downsample.0.weight"), nullptr);
  EXPECT_EQ(model->named_parameters().find("layer1.0.downsample.0.weight"), nullptr);
  EXPECT_NE(model->named_buffers().find("layer4.1.bn2.num_batches_tracked"), nullptr);

  // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std sqrt(2 / (out * k * k)); 2.4M samples.
  const at::Tensor w = param(*model, "layer4.0.conv2.weight");
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / (512 * 9)), 0.01 * std::sqrt(2.0 / (512 * 9)));
  EXPECT_TRUE(torch::equal(param(*model, "layer1.0.bn2.weight"), torch::ones({64})));
  EXPECT_TRUE(torch::equal(param(*model, "layer1.0.bn2.bias"), torch::zeros({64})));
}

TEST_F(ModelZoo, ResNetOptions) {
  auto zeroed = create("resnet", {{"depth", int64_t{50}}, {"stem", std::string("cifar")},
                                  {"zero_init_residual", true}});
  EXPECT_TRUE(torch::equal(param(*zeroed, "layer3.5.bn3.weight"), torch::zeros({1024})));
  EXPECT_TRUE(torch::equal(param(*zeroed, "layer3.5.bn2.weight"), torch::ones({256})));
  EXPECT_EQ(param(*zeroed, "conv1.weight").sizes(), (at::IntArrayRef{64, 3, 3, 3}));

  // Half width: every stage and the stem at half the channels (0.5 * 64 = 32, …, 0.5 * 2048 = 1024).
  auto half = create("resnet", {{"depth", int64_t{50}}, {"width", 0.5}, {"dropout", 0.5}}, 1, 32);
  EXPECT_EQ(param(*half, "conv1.weight").sizes(), (at::IntArrayRef{32, 1, 7, 7}));
  EXPECT_EQ(param(*half, "layer4.2.conv3.weight").sizes(), (at::IntArrayRef{1024, 256, 1, 1}));
  EXPECT_EQ(param(*half, "fc.weight").sizes(), (at::IntArrayRef{10, 1024}));
  const at::Tensor x = torch::randn({2, 1, 32, 32});
  half->eval();
  EXPECT_TRUE(torch::equal(half->forward(x), half->forward(x))) << "dropout must be off in eval mode";
  half->train();
  EXPECT_EQ(half->forward(x).sizes(), (at::IntArrayRef{2, 10}));

  // Tiny widths round to at least one channel.
  auto tiny = create("resnet", {{"width", 0.01}}, 3, 32);
  EXPECT_EQ(param(*tiny, "conv1.weight").size(0), 1);
  EXPECT_EQ(param(*tiny, "fc.weight").size(1), 5);  // round(512 * 0.01)
}

TEST_F(ModelZoo, WideResNetNamesAndDropout) {
  auto model = create("wide-resnet", {{"depth", int64_t{16}}, {"widen", int64_t{4}}, {"dropout", 0.3}});
  EXPECT_NE(model->named_parameters().find("block1.layer.0.convShortcut.weight"), nullptr);  // 16 -> 64
  EXPECT_EQ(model->named_parameters().find("block1.layer.1.convShortcut.weight"), nullptr);
  EXPECT_EQ(param(*model, "block3.layer.1.conv2.weight").sizes(), (at::IntArrayRef{256, 256, 3, 3}));
  EXPECT_TRUE(torch::equal(param(*model, "fc.bias"), torch::zeros({10})));
  const at::Tensor x = torch::randn({2, 3, 32, 32});
  model->eval();
  EXPECT_TRUE(torch::equal(model->forward(x), model->forward(x)));
  model->train();
  EXPECT_FALSE(torch::equal(model->forward(x), model->forward(x))) << "dropout 0.3 must act in train mode";
}

TEST_F(ModelZoo, InvalidArchitecturesSayWhatIsValid) {
  EXPECT_TRUE(contains(error_of([&] { create("resnet", {{"depth", int64_t{20}}}); }),
                       "resnet: depth 20 is not a ResNet; valid depths are 18, 34 (BasicBlock), 50, 101, 152"));
  EXPECT_TRUE(contains(error_of([&] { create("resnet", {{"width", 0.0}}); }), "valid: 0 < width <= 16"));
  EXPECT_TRUE(contains(error_of([&] { create("wide-resnet", {{"depth", int64_t{27}}}); }),
                       "wide-resnet: depth 27 is not 6n + 4 with n >= 1; valid depths are 10, 16, 22, 28"));
  EXPECT_TRUE(contains(error_of([&] { create("wide-resnet", {{"widen", int64_t{0}}}); }), "valid: 1 <= widen <= 64"));
}

class ModelZooWeights : public ModelZooTest {
 protected:
  // WRN-10-1 weights (3 channels, 10 classes) saved by Python, and broken copies of them. The loader is
  // shared by both plugins; a small model keeps the files small.
  void SetUp() override {
    ModelZooTest::SetUp();
    const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " + LOOM_TEST_SOURCE_DIR +
                                 "/tests/python/model_zoo_reference.py --weight-files " + dir.path().string());
    ASSERT_EQ(py.exit_code, 0) << py.output;
  }
  std::map<std::string, Value> wrn(const std::string& file, int64_t depth = 10) {
    return {{"depth", depth}, {"widen", int64_t{1}}, {"weights", (dir / file).string()}};
  }
  std::string error_loading(const std::string& file, int64_t channels = 3, int64_t depth = 10) {
    return error_of([&] { create("wide-resnet", wrn(file, depth), channels, 32); });
  }

  TempDir dir;
};

TEST_F(ModelZooWeights, NumBatchesTrackedMayBeAbsent) {
  // As PyTorch < 0.4.1 wrote BatchNorms: accepted, and the same model as with the counters.
  auto a = create("wide-resnet", wrn("wrn.pt")), b = create("wide-resnet", wrn("old.pt"));
  a->eval();
  b->eval();
  const at::Tensor x = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
  EXPECT_EQ(a->named_buffers()["bn1.num_batches_tracked"].item<int64_t>(), 7);
}

TEST_F(ModelZooWeights, MismatchesNameTheKeyTheShapesAndTheFile) {
  EXPECT_TRUE(contains(error_loading("missing.pt"), "wide-resnet: weights file '" + (dir / "missing.pt").string() +
                                                        "' does not match the model: missing key 'fc.bias';"));
  EXPECT_TRUE(contains(error_loading("extra.pt"), "unexpected key 'fc.scale'"));
  // WRN-10-1's weights into a WRN-16-1: the keys of the extra blocks are missing, a few named.
  const std::string deeper = error_loading("wrn.pt", 3, 16);
  EXPECT_TRUE(contains(deeper, "missing keys 'block1.layer.1.bn1.bias'"));
  EXPECT_TRUE(contains(deeper, " more;"));
  // 3-channel weights into a 1-channel model.
  const std::string shape = error_loading("wrn.pt", 1);
  EXPECT_TRUE(contains(shape, "'conv1.weight' has shape [16, 3, 3, 3] in the file but [16, 1, 3, 3] in the model"));
  EXPECT_TRUE(contains(shape, "wrn.pt"));
  // The other plugin, the same loader: nothing of a WRN's names fits a ResNet.
  EXPECT_TRUE(contains(error_of([&] { create("resnet", {{"weights", (dir / "wrn.pt").string()}}); }),
                       "resnet: weights file '" + (dir / "wrn.pt").string() + "' does not match the model"));
}

TEST_F(ModelZooWeights, OtherFilesAreClearErrorsWithoutBacktraces) {
  write_file(dir / "notes.txt", "not a checkpoint");
  const std::string text = error_loading("notes.txt");
  EXPECT_TRUE(contains(text, "notes.txt' is not a zip archive written by torch.save ("));
  EXPECT_TRUE(contains(text, "save one in Python with torch.save(model.state_dict(), path)"));
  EXPECT_FALSE(contains(text, "Exception raised from"));
  EXPECT_TRUE(contains(error_loading("absent.pt"), "absent.pt' cannot be opened"));
  EXPECT_TRUE(contains(error_loading("int.pt"), "'conv1.weight' is a int, not a tensor"));
  EXPECT_TRUE(contains(error_loading("checkpoint.pt"), "'model' is a dict, not a tensor"));
  EXPECT_TRUE(contains(error_loading("module.pt"), "holds a pickled Python object, not only a dict of tensors"));
}

}  // namespace
}  // namespace loom::test
