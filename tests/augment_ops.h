// Augmentation ops created in-process from the build's real plugin files, on a synthetic image dataset
// (tests/test_augment_mixing.cpp, tests/test_augment_erasing.cpp).
#pragma once

#include "test_util.h"

#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <loom/augmentation.h>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace loom::test {

inline at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

/// A parameter value as JSON (the reference script reads the ops' parameters from cases.json).
inline nlohmann::json to_json(const Value& v) {
  return std::visit([](const auto& x) -> nlohmann::json {
    using T = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, int64_t> || std::is_same_v<T, double> ||
                  std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<int64_t>> ||
                  std::is_same_v<T, std::vector<double>> || std::is_same_v<T, std::vector<std::string>>)
      return x;
    else
      return nullptr;
  }, v);
}

class AugmentOps : public ::testing::Test {
 public:
  static constexpr int64_t kClasses = 5;

  void SetUp() override {
    registry.scan({LOOM_TEST_PLUGIN_DIR});
    for (const char* name : {"random-erasing", "mixup", "cutmix"})
      ASSERT_NE(registry.find(Kind::Augmentation, name), nullptr) << "the " << name << " plugin is not built";
    dataset = make_dataset({{"channels", int64_t{3}}, {"height", int64_t{16}}, {"width", int64_t{20}},
                            {"classes", kClasses}});
  }

  std::shared_ptr<Dataset> make_dataset(const std::map<std::string, Value>& given) {
    const host::Feature* f = registry.find(Kind::Dataset, "synthetic");
    EXPECT_NE(f, nullptr);
    return registry.create<Dataset>(*f, CreateContext{params_for(*f, given), ctx, nullptr});
  }

  /// The op `name` with its schema defaults and `given` values, for `data` (default: the fixture's).
  std::shared_ptr<Augmentation> op(const std::string& name, const std::map<std::string, Value>& given = {},
                                   std::shared_ptr<Dataset> data = nullptr) {
    const host::Feature* f = registry.find(Kind::Augmentation, name);
    if (!f) throw std::runtime_error("no augmentation plugin " + name);
    return registry.create<Augmentation>(*f, CreateContext{params_for(*f, given), ctx, data ? data : dataset});
  }

  /// The op's factory error for `given` ("" when it accepts them).
  std::string refusal(const std::string& name, const std::map<std::string, Value>& given,
                      std::shared_ptr<Dataset> data = nullptr) {
    try {
      op(name, given, std::move(data));
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  /// The op applied to one batch with a generator seeded `seed`.
  static AugmentBatch applied(const Augmentation& a, AugmentBatch batch, uint64_t seed) {
    at::Generator g = seeded(seed);
    a.apply(batch, g);
    return batch;
  }

  /// Float images [n, 3, 16, 20] and int64 classes [n] drawn from `seed`.
  static AugmentBatch random_batch(int64_t n, uint64_t seed) {
    at::Generator g = seeded(seed);
    return {at::randn({n, 3, 16, 20}, g), at::randint(0, kClasses, {n}, g, at::kLong), at::rand({n}, g)};
  }

  host::Registry registry;
  host::HostLogger logger;
  host::HostRunContext ctx{logger, c10::kCPU, 1, 1, {}, fs::temp_directory_path() / "loom-test-cache"};
  std::shared_ptr<Dataset> dataset;

 private:
  static Params params_for(const host::Feature& f, const std::map<std::string, Value>& given) {
    std::map<std::string, Value> values;
    for (const auto& spec : f.info.params) {
      if (auto it = given.find(spec.name); it != given.end()) values[spec.name] = it->second;
      else if (spec.default_value) values[spec.name] = *spec.default_value;
    }
    return Params(values);
  }
};

}  // namespace loom::test
