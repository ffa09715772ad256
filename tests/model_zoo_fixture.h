// Shared by tests/test_model_zoo*.cpp: the model plugins created through the real registry, as a user
// reaches them, on a synthetic dataset of the wanted image shape.
#pragma once

#include "test_util.h"

#include "common/model/torch_file.h"
#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace loom::test {

class ModelZooTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry.scan({LOOM_TEST_PLUGIN_DIR});
    ASSERT_TRUE(registry.failures().empty()) << registry.failures()[0].file << ": " << registry.failures()[0].reason;
  }

  /// Schema defaults of `feature`, with `given` on top.
  static Params params_for(const host::Feature& feature, const std::map<std::string, Value>& given) {
    std::map<std::string, Value> values = given;
    for (const auto& spec : feature.info.params)
      if (!values.count(spec.name) && spec.default_value) values[spec.name] = *spec.default_value;
    return Params(values);
  }

  /// `plugin` (a model) with `given` params, for samples [channels, size, size] of 10 classes.
  std::shared_ptr<Model> create(const std::string& plugin, const std::map<std::string, Value>& given,
                                int64_t channels = 3, int64_t size = 32) {
    const host::Feature* synthetic = registry.find(Kind::Dataset, "synthetic");
    const host::Feature* model = registry.find(Kind::Model, plugin);
    if (!synthetic || !model) throw std::runtime_error("plugin 'synthetic' or '" + plugin + "' was not built");
    dataset_params = params_for(*synthetic, {{"samples", int64_t{10}}, {"test_samples", int64_t{1}},
                                             {"classes", int64_t{10}}, {"channels", channels},
                                             {"height", size}, {"width", size}});
    auto dataset = registry.create<Dataset>(*synthetic, CreateContext{dataset_params, ctx, nullptr});
    model_params = params_for(*model, given);
    return registry.create<Model>(*model, CreateContext{model_params, ctx, dataset});
  }

  /// The message of what `make` throws ("" if nothing).
  template <class F>
  static std::string error_of(F&& make) {
    try {
      make();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  host::Registry registry;
  host::HostLogger logger;
  host::HostRunContext ctx{logger, c10::kCPU, 1, 1, {}, fs::temp_directory_path() / "loom-test-cache"};
  Params dataset_params, model_params;
};

/// Whether `text` contains `part`, showing both when not (GoogleTest without gmock's HasSubstr).
inline ::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\"\n  does not contain \"" << part << "\"";
}

inline int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

/// A dict of tensors that Python's torch.save wrote (the reader the plugins' `weights` parameter uses).
inline std::map<std::string, at::Tensor> read_dict(const fs::path& file) {
  std::string where = "file '";  // appended, not "'" + …: GCC 12 -O3 warns falsely (-Wstringop-overflow) on that
  where += file.string();
  where += "'";
  return model_common::read_tensor_dict(file, where);
}

}  // namespace loom::test
