// The model zoo against its references: torchvision's ResNets and the WideResNet authors' PyTorch port
// (tests/python/model_zoo_reference.py). Python builds each reference, randomises it, saves its state_dict
// with torch.save(model.state_dict(), path) and records the eval logits and train-mode gradients; the
// plugin loads that file through its `weights` parameter and must reproduce both.
#include "model_zoo_fixture.h"

namespace loom::test {
namespace {

struct Case {
  std::string name, plugin;
  int64_t depth;
  std::string variant;  // resnet: the stem; wide-resnet: the widen factor
  int64_t channels, size;
};

// Batch 2, inputs small enough for two CPU cores (the Python side runs each model too): ResNet-18 at 64 px
// through the ImageNet stem (16 px reach layer1) and 32 px through the CIFAR stem; ResNet-50, 4x the
// work per pixel, at half those sizes (layer4 still sees 2x2 maps through the CIFAR stem).
const std::vector<Case> kResNets = {
    {"resnet18-imagenet", "resnet", 18, "imagenet", 3, 64},
    {"resnet18-cifar", "resnet", 18, "cifar", 3, 32},
    {"resnet18-imagenet-1ch", "resnet", 18, "imagenet", 1, 32},
    {"resnet50-imagenet", "resnet", 50, "imagenet", 3, 32},
    {"resnet50-cifar", "resnet", 50, "cifar", 3, 16},
};
const std::vector<Case> kWideResNets = {
    {"wrn-28-2", "wide-resnet", 28, "2", 3, 32},
    {"wrn-28-2-1ch", "wide-resnet", 28, "2", 1, 32},
};

std::map<std::string, Value> params_of(const Case& c, const fs::path& weights = {}) {
  std::map<std::string, Value> p{{"depth", c.depth}};
  if (c.plugin == "resnet") p["stem"] = c.variant;
  else p["widen"] = int64_t{std::stoll(c.variant)};
  if (!weights.empty()) p["weights"] = weights.string();
  return p;
}

/// max |a - b| / max(|b|): the error relative to the tensor's scale.
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-12);
  return (a - b).abs().max().item<double>() / scale;
}

class ModelZooParity : public ModelZooTest {
 protected:
  void write_references(const std::vector<Case>& cases) {
    std::string command = std::string(LOOM_TEST_PYTHON) + " " + LOOM_TEST_SOURCE_DIR +
                          "/tests/python/model_zoo_reference.py " + dir.path().string();
    for (const Case& c : cases)
      command += " " + c.name + "," + c.plugin + "," + std::to_string(c.depth) + "," + c.variant + "," +
                 std::to_string(c.channels) + "," + std::to_string(c.size);
    const CommandResult py = run(command);
    ASSERT_EQ(py.exit_code, 0) << py.output;
  }

  void expect_parity(const Case& c) {
    SCOPED_TRACE(c.name);
    const std::map<std::string, at::Tensor> ref = read_dict(dir / (c.name + ".ref.pt"));
    auto model = create(c.plugin, params_of(c, dir / (c.name + ".weights.pt")), c.channels, c.size);
    EXPECT_EQ(parameter_count(*model), ref.at("num_params").item<int64_t>());

    // Every parameter and buffer came from the file, BatchNorm's num_batches_tracked included.
    const std::map<std::string, at::Tensor> weights = read_dict(dir / (c.name + ".weights.pt"));
    EXPECT_EQ(weights.size(), model->named_parameters().size() + model->named_buffers().size());
    for (const auto& b : model->named_buffers())
      if (b.key().ends_with("num_batches_tracked")) EXPECT_EQ(b.value().item<int64_t>(), 7) << b.key();

    const at::Tensor x = ref.at("input");
    // Eval mode: running statistics. Same kernels (LibTorch is the wheel's), but the threads may split
    // reductions differently, so equality up to fp32 rounding of sums over up to 4608 products: 1e-5 of
    // the logits' scale (they reach ~200 with the randomised BatchNorms of a ResNet-50).
    model->eval();
    {
      torch::NoGradGuard no_grad;
      const at::Tensor logits = model->forward(x), expected = ref.at("logits");
      ASSERT_EQ(logits.sizes(), expected.sizes());
      EXPECT_LE((logits - expected).abs().max().item<double>(),
                1e-5 * std::max(1.0, expected.abs().max().item<double>()));
    }
    // Train mode: batch statistics, then the cross-entropy gradient of every parameter.
    model->train();
    torch::nn::functional::cross_entropy(model->forward(x), ref.at("labels")).backward();
    double worst = 0;
    std::string worst_name;
    for (const auto& p : model->named_parameters()) {
      ASSERT_TRUE(ref.count("grad." + p.key())) << p.key();
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      const double err = relative_error(p.value().grad(), ref.at("grad." + p.key()));
      if (err > worst) worst = err, worst_name = p.key();
    }
    // 1e-4 of each gradient's own scale: backward through train-mode BatchNorm over batch 2 divides by
    // small batch deviations and sums over whole feature maps, which amplifies fp32 reordering noise
    // beyond the forward pass's 1e-5; a wrong connection or weight shows up at order 1.
    EXPECT_LE(worst, 1e-4) << "worst gradient: " << worst_name;
    std::cout << "[ " << c.name << " ] params " << parameter_count(*model) << ", worst relative gradient error "
              << worst << " (" << worst_name << ")\n";
  }

  TempDir dir;
};

TEST_F(ModelZooParity, ResNetsMatchTorchvision) {
  write_references(kResNets);
  for (const Case& c : kResNets) expect_parity(c);
}

TEST_F(ModelZooParity, WideResNetsMatchTheReference) {
  write_references(kWideResNets);
  for (const Case& c : kWideResNets) expect_parity(c);
}

TEST_F(ModelZooTest, WideResNet28x2HasFixMatchsParameterCount) {
  // WRN-28-2 as FixMatch and its successors report it on CIFAR-10: 1.47M parameters.
  EXPECT_EQ(parameter_count(*create("wide-resnet", params_of(kWideResNets[0]), 3, 32)), 1467610);
  EXPECT_EQ(parameter_count(*create("wide-resnet", params_of(kWideResNets[0]), 1, 32)), 1467322);
}

}  // namespace
}  // namespace loom::test
