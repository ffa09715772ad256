// Every registered built-in plugin is created with its schema defaults and exercised through its kind's
// interface — a new plugin is covered the day it lands.
#include "image_files.h"
#include "test_util.h"

#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace loom::test {
namespace {

// Schema defaults, plus `given` values (for required parameters such as a dataset's root).
Params defaults(const Schema& schema, const std::map<std::string, Value>& given = {}) {
  std::map<std::string, Value> values;
  for (const auto& spec : schema) {
    if (auto it = given.find(spec.name); it != given.end()) {
      values[spec.name] = it->second;
      continue;
    }
    EXPECT_FALSE(spec.is_required && !spec.default_value)
        << "built-in parameter '" << spec.name << "' is required; give it a default or extend this test";
    if (spec.default_value) values[spec.name] = *spec.default_value;
  }
  return Params(values);
}

class EveryPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    write_easy_folder(images / "folder", 4, 6, 8);
    required["image-folder"] = {{"root", (images / "folder").string()}};
    registry.scan({LOOM_TEST_PLUGIN_DIR});
    ASSERT_TRUE(registry.failures().empty()) << registry.failures()[0].file << ": " << registry.failures()[0].reason;
    for (Kind k : kAllKinds) ASSERT_FALSE(registry.features(k).empty()) << "no " << to_string(k) << " plugin built";
    const host::Feature* synthetic = registry.find(Kind::Dataset, "synthetic");
    ASSERT_NE(synthetic, nullptr);
    Params p = defaults(synthetic->info.params);
    dataset = registry.create<Dataset>(*synthetic, CreateContext{p, ctx, nullptr});
  }
  template <class T>
  std::shared_ptr<T> make(const host::Feature& f) {
    params = defaults(f.info.params, required[f.info.name]);
    return registry.create<T>(f, CreateContext{params, ctx, dataset});
  }

  TempDir images;
  std::map<std::string, std::map<std::string, Value>> required;  // feature name -> values of required params
  host::Registry registry;
  host::HostLogger logger;
  host::HostRunContext ctx{logger, c10::kCPU, 1, 1, {}, fs::temp_directory_path() / "loom-test-cache"};
  std::shared_ptr<Dataset> dataset;
  Params params;
};

TEST_F(EveryPlugin, Datasets) {
  for (const host::Feature* f : registry.features(Kind::Dataset)) {
    SCOPED_TRACE(f->info.name);
    auto d = make<Dataset>(*f);
    const SampleSpec spec = d->spec();
    EXPECT_GE(spec.num_classes, 2);
    const at::Tensor labeled = d->indices(Split::Labeled);
    ASSERT_GT(labeled.numel(), 4);
    const at::Tensor x = d->load(labeled.slice(0, 0, 4));
    std::vector<int64_t> expected{4};
    expected.insert(expected.end(), spec.shape.begin(), spec.shape.end());
    EXPECT_EQ(x.sizes().vec(), expected);
    EXPECT_EQ(x.scalar_type(), spec.dtype);
    EXPECT_TRUE(torch::equal(x, d->load(labeled.slice(0, 0, 4)))) << "load must be deterministic";
    EXPECT_EQ(d->labels().size(0), d->size());
    EXPECT_FALSE(d->fingerprint().empty());
  }
}

TEST_F(EveryPlugin, Augmentations) {
  // On image-folder's data, which declares a pixel affine (ops such as randaugment need one).
  const host::Feature* folder = registry.find(Kind::Dataset, "image-folder");
  ASSERT_NE(folder, nullptr);
  dataset = make<Dataset>(*folder);
  const at::Tensor idx = dataset->indices(Split::Labeled).slice(0, 0, 8);
  const at::Tensor x = dataset->load(idx), y = dataset->labels().index_select(0, idx);
  for (const host::Feature* f : registry.features(Kind::Augmentation)) {
    SCOPED_TRACE(f->info.name);
    auto op = make<Augmentation>(*f);
    auto run = [&](uint64_t seed) {
      AugmentBatch b{x, y, {}};
      at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
      op->apply(b, g);
      return b;
    };
    const at::Tensor x_before = x.clone();
    const AugmentBatch a = run(3), again = run(3);
    EXPECT_EQ(a.x.sizes(), x.sizes());
    EXPECT_EQ(a.x.scalar_type(), x.scalar_type());
    EXPECT_EQ(a.y.size(0), x.size(0));
    EXPECT_TRUE(torch::equal(a.x, again.x)) << "the same generator seed gives the same batch";
    EXPECT_TRUE(torch::equal(a.y, again.y));
    EXPECT_TRUE(torch::equal(x, x_before)) << "the input batch is left untouched";
  }
}

TEST_F(EveryPlugin, Caches) {
  for (const host::Feature* f : registry.features(Kind::Cache)) {
    SCOPED_TRACE(f->info.name);
    auto wrapped = make<Cache>(*f)->wrap(dataset);
    const at::Tensor idx = dataset->indices(Split::Labeled).slice(0, 0, 8);
    EXPECT_TRUE(torch::equal(wrapped->load(idx), dataset->load(idx)));
  }
}

TEST_F(EveryPlugin, ModelsPrecisionsAccumulations) {
  const at::Tensor idx = dataset->indices(Split::Labeled).slice(0, 0, 8);
  const at::Tensor x = dataset->load(idx), y = dataset->labels().index_select(0, idx);
  for (const host::Feature* mf : registry.features(Kind::Model)) {
    for (const host::Feature* pf : registry.features(Kind::Precision)) {
      SCOPED_TRACE(mf->info.name + " + " + pf->info.name);
      if (mf->info.name == "cnn" && dataset->spec().shape.size() != 3) continue;
      auto model = make<Model>(*mf);
      auto precision = make<Precision>(*pf);
      precision->prepare(*model, c10::kCPU);
      torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1));
      const at::Tensor before = model->parameters()[0].clone();
      // A dynamic loss scale starts high (65536) and skips steps whose fp16 gradients overflow, halving
      // the scale each time — deep models (resnet) need a few; the scaler must get there.
      bool stepped = false;
      for (int attempt = 0; attempt < 24 && !stepped; ++attempt) {
        at::Tensor logits;
        {
          auto scope = precision->forward_scope(c10::kCPU);
          logits = model->forward(x);
        }
        ASSERT_EQ(logits.sizes().vec(), (std::vector<int64_t>{8, dataset->spec().num_classes}));
        precision->backward(torch::nn::functional::cross_entropy(logits.to(at::kFloat), y));
        stepped = !precision->step(opt).skipped;
        opt.zero_grad();
      }
      EXPECT_TRUE(stepped) << "every step was skipped";
      EXPECT_FALSE(torch::equal(before, model->parameters()[0])) << "the step changed nothing";
    }
  }
  for (const host::Feature* af : registry.features(Kind::Accumulation)) {
    SCOPED_TRACE(af->info.name);
    const EpochPlan plan = make<Accumulation>(*af)->plan(PlanRequest{0, 1, {4, 4, 2}, 0});
    int64_t covered = 0;
    for (const auto& g : plan.groups) covered += g.count;
    EXPECT_EQ(covered, 3);
  }
  for (const host::Feature* sf : registry.features(Kind::SelfTraining)) {
    SCOPED_TRACE(sf->info.name);
    EXPECT_NE(make<SelfTraining>(*sf), nullptr);  // run() is exercised end to end in test_e2e
  }
  for (const host::Feature* cf : registry.features(Kind::Callback)) {
    SCOPED_TRACE(cf->info.name);
    EXPECT_NE(make<Callback>(*cf), nullptr);  // the hooks are driven in test_callbacks
  }
}

TEST_F(EveryPlugin, MetricSinks) {
  for (const host::Feature* f : registry.features(Kind::MetricSink)) {
    SCOPED_TRACE(f->info.name);
    TempDir run;
    host::HostRunContext run_ctx{logger, c10::kCPU, 1, 1, run / "run", run / "cache"};
    params = defaults(f->info.params);
    auto sink = registry.create<MetricSink>(*f, CreateContext{params, run_ctx, nullptr});
    EXPECT_FALSE(fs::exists(run / "run")) << "a sink creates no file before its first write";
    MetricRecord r;
    r.stage = "supervised";
    r.epoch = 1;
    r.values = {{"train_loss", 0.5}, {"val_loss", std::monostate{}}, {"note", std::string("x")}};
    sink->write(r);
    sink->flush();
    const StateDict state = sink->state_dict();
    // A resumed run: a fresh sink restored from the checkpoint, writing on.
    auto resumed = registry.create<MetricSink>(*f, CreateContext{params, run_ctx, nullptr});
    resumed->load_state_dict(state);
    r.epoch = 2;
    resumed->write(r);
    resumed->flush();
  }
}

}  // namespace
}  // namespace loom::test
