// The real `loom` binary end to end: train the synthetic config, check what a user gets on disk, reject
// bad configs without creating anything, list plugins, and validate every shipped config.
#include "test_util.h"

#include <gtest/gtest.h>

namespace loom::test {
namespace {

const std::string kSynthetic = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";

TEST(EndToEnd, TrainsSyntheticAndWritesTheRunDirectory) {
  TempDir out;
  const CommandResult r = loom("run " + kSynthetic + " --set run.output_dir=" + out.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path run_dir = only_run_dir(out.path(), "synthetic");
  ASSERT_FALSE(run_dir.empty()) << r.output;
  EXPECT_NE(r.output.find("metrics: " + (run_dir / "metrics.jsonl").string()), std::string::npos) << r.output;
  for (const char* f : {"config.resolved.toml", "metrics.jsonl", "summary.json", "loom.log", "checkpoint.pt", "model.pt"})
    EXPECT_TRUE(fs::exists(run_dir / f)) << f;

  const auto metrics = read_epoch_records(run_dir / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  for (const char* key : {"round", "epoch", "optimizer_steps", "train_loss", "val_loss", "val_accuracy", "lr",
                          "samples_per_second"})
    EXPECT_TRUE(metrics[0].contains(key)) << key;
  // 1024 samples: 10% validation, 922 train → 29 micro-batches of 32 → 29 optimizer steps per epoch.
  EXPECT_EQ(metrics[0]["optimizer_steps"], 29);
  EXPECT_EQ(metrics[2]["optimizer_steps"], 87);
  EXPECT_LT(metrics[2]["train_loss"].get<double>(), metrics[0]["train_loss"].get<double>());

  const auto summary = nlohmann::json::parse(read_file(run_dir / "summary.json"));
  EXPECT_GE(summary["test_accuracy"].get<double>(), 0.9) << summary.dump(2);
  EXPECT_EQ(summary["epochs"], 3);
  EXPECT_EQ(summary["threads"], 1);

  // The resolved config is complete and runs as it is.
  const std::string resolved = read_file(run_dir / "config.resolved.toml");
  EXPECT_NE(resolved.find("batch_size = 32"), std::string::npos);
  EXPECT_NE(resolved.find("plugin = 'fp32'"), std::string::npos) << resolved;
  const CommandResult check = loom("check " + (run_dir / "config.resolved.toml").string());
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST(EndToEnd, RejectedConfigCreatesNothing) {
  TempDir dir;
  write_file(dir / "bad.toml", "[run]\noutput_dir = \"out\"\nepochs = 0\n[dataset]\nplugin = \"synthetic\"\n"
                               "[model]\nplugin = \"mlp\"\nhiden = [3]\n");
  const CommandResult r = loom("run " + (dir / "bad.toml").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find((dir / "bad.toml").string() + ":3:10: error: 'epochs' in [run] is 0"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(":8:1: error: unknown key 'hiden' in [model] (plugin 'mlp'); did you mean 'hidden'?"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("config rejected (2 errors); nothing was created"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "out"));
  EXPECT_EQ(count_entries(dir.path()), 1u);  // only bad.toml
}

TEST(EndToEnd, PluginFailureInCreateCreatesNothing) {
  TempDir dir;
  write_file(dir / "c.toml", "[run]\noutput_dir = \"out\"\n[dataset]\nplugin = \"synthetic\"\n[model]\nplugin = \"mlp\"\n"
                             "[cache]\nplugin = \"fixture-throws\"\n");
  const CommandResult r = loom("run " + (dir / "c.toml").string(), LOOM_TEST_FIXTURE_DIR);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cache plugin 'fixture-throws' (libloom_fixture_throws.so) failed in create: deliberate failure "
                          "in create"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(EndToEnd, PluginsJsonListsEveryKindWithSchemas) {
  const CommandResult r = loom("plugins --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  std::set<std::string> kinds;
  for (const auto& p : j["plugins"]) {
    kinds.insert(p["kind"].get<std::string>());
    EXPECT_FALSE(p["summary"].get<std::string>().empty()) << p["name"];
    for (const auto& param : p["params"]) EXPECT_FALSE(param["doc"].get<std::string>().empty()) << p["name"] << "." << param["name"];
  }
  for (Kind k : kAllKinds) EXPECT_TRUE(kinds.count(std::string(to_string(k)))) << to_string(k);
  EXPECT_TRUE(j["failures"].empty()) << j["failures"].dump(2);
  EXPECT_TRUE(j["builtin_tables"].contains("optimizer"));
}

TEST(EndToEnd, PluginsNameShowsTheSchema) {
  const CommandResult r = loom("plugins fashion-mnist");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("dataset plugin 'fashion-mnist'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("labeled_per_class"), std::string::npos) << r.output;
  const CommandResult missing = loom("plugins fashion-mnst");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("did you mean 'fashion-mnist'?"), std::string::npos) << missing.output;
}

TEST(EndToEnd, EveryShippedConfigValidates) {
  // Configs on an image folder point at one the user generates (data/fashion-mnist-images, git-ignored);
  // here they get a small folder made by the same script.
  TempDir images;
  const std::string make_images = std::string(LOOM_TEST_PYTHON) + " " + LOOM_TEST_SOURCE_DIR +
                                  "/scripts/make-image-folder.py --per-class 3 --out " + (images / "fm").string();
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(LOOM_TEST_SOURCE_DIR) / "configs")) {
    if (e.path().extension() != ".toml") continue;
    ++n;
    std::string extra;
    if (read_file(e.path()).find("plugin = \"image-folder\"") != std::string::npos) {
      if (!fs::exists(images / "fm")) {
        const CommandResult made = run(make_images);
        ASSERT_EQ(made.exit_code, 0) << made.output;
      }
      extra = " --set dataset.root=" + (images / "fm").string();
    }
    const CommandResult r = loom("check " + e.path().string() + extra);
    EXPECT_EQ(r.exit_code, 0) << e.path() << "\n" << r.output;
  }
  EXPECT_GT(n, 0u);
}

TEST(EndToEnd, UsageErrors) {
  EXPECT_EQ(loom("run").exit_code, 2);
  const CommandResult r = loom("run --resume /nonexistent/run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("/nonexistent/run is not a run directory (no config.resolved.toml)"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom::test
