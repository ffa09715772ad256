// The pseudo-label self-training plugin: its selection rules and student data (unit), the soft-label loss
// against PyTorch, clean teacher predictions, disjoint splits, two rounds end to end on synthetic data
// (metrics, provenance read back by numpy, summary), and resume at a round boundary.
#include "run_util.h"

#include "state/checkpoint.h"
#include "config/config.h"
#include "state/hash.h"
#include "loop/loss.h"
#include "state/metrics.h"
#include "plugins/registry.h"
#include "config/resolve.h"
#include "plugins/run_context.h"
#include "selection.h"
#include "cli/setup.h"
#include "student_data.h"
#include "plugins/run_plugins.h"
#include "loop/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>

namespace loom::test {
namespace {

namespace pl = loom::pseudo_label;

const std::string kSynthetic = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";

at::Tensor longs(std::vector<int64_t> v) { return torch::tensor(v, at::kLong); }

at::Tensor probs(const std::vector<std::vector<float>>& rows) {
  at::Tensor t = at::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, at::kFloat);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t c = 0; c < rows[i].size(); ++c) t[static_cast<int64_t>(i)][static_cast<int64_t>(c)] = rows[i][c];
  return t;
}

// ---- selection ------------------------------------------------------------------------------------

TEST(PseudoLabelSelection, ThresholdKeepsConfidentSamples) {
  const at::Tensor idx = longs({10, 11, 12, 13, 14});
  const at::Tensor p = probs({{0.9f, 0.05f, 0.05f}, {0.2f, 0.7f, 0.1f}, {0.05f, 0.05f, 0.9f}, {0.5f, 0.3f, 0.2f},
                              {0.1f, 0.8f, 0.1f}});
  pl::SelectionOptions o;
  o.rule = pl::Rule::Threshold;
  o.threshold = 0.8;  // 0.8f is 0.800000012 > 0.8: the float confidence compares as itself
  const pl::Selection s = pl::select(idx, p, o);
  EXPECT_EQ(vec(s.indices), (std::vector<int64_t>{10, 12, 14}));
  EXPECT_EQ(vec(s.labels), (std::vector<int64_t>{0, 2, 1}));
  EXPECT_EQ(vec(s.positions), (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(vec(s.copies), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_FLOAT_EQ(s.confidence[1].item<float>(), 0.9f);
  EXPECT_EQ(s.candidates_per_class, (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_TRUE(s.short_classes.empty());
  EXPECT_EQ(s.entries(), 3);

  o.threshold = 0.95;
  const pl::Selection none = pl::select(idx, p, o);
  EXPECT_EQ(none.size(), 0);
  EXPECT_EQ(none.indices.scalar_type(), at::kLong);
  EXPECT_EQ(none.confidence.scalar_type(), at::kFloat);
  EXPECT_EQ(none.entries(), 0);
}

TEST(PseudoLabelSelection, TopKBreaksTiesByIndexNotByPoolOrder) {
  // Class 0 candidates: 9 (0.95), then a three-way tie at 0.9 between 7, 3 and 5, then 1 (0.8).
  const at::Tensor idx = longs({7, 3, 5, 9, 1, 20, 21});
  const at::Tensor p = probs({{0.9f, 0.1f}, {0.9f, 0.1f}, {0.9f, 0.1f}, {0.95f, 0.05f}, {0.8f, 0.2f},
                              {0.5f, 0.5f},   // argmax tie: the lower class wins → class 0 at 0.5
                              {0.3f, 0.7f}});
  pl::SelectionOptions o;
  o.rule = pl::Rule::TopKPerClass;
  o.k = 3;
  const pl::Selection s = pl::select(idx, p, o);
  EXPECT_EQ(vec(s.indices), (std::vector<int64_t>{3, 5, 9, 21}));
  EXPECT_EQ(vec(s.labels), (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_EQ(vec(s.positions), (std::vector<int64_t>{1, 2, 3, 6}));
  EXPECT_EQ(s.candidates_per_class, (std::vector<int64_t>{6, 1}));
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(s.short_classes, (std::vector<int64_t>{1}));

  // The same pool in another order selects the same samples.
  const at::Tensor order = longs({6, 5, 4, 3, 2, 1, 0});
  const pl::Selection again = pl::select(idx.index_select(0, order), p.index_select(0, order), o);
  EXPECT_EQ(vec(again.indices), vec(s.indices));
}

TEST(PseudoLabelSelection, ClassesWithFewerThanKKeepWhatTheyHaveAndAreReported) {
  const at::Tensor idx = longs({0, 1, 2, 3});
  const at::Tensor p = probs({{0.6f, 0.3f, 0.1f}, {0.7f, 0.2f, 0.1f}, {0.8f, 0.1f, 0.1f}, {0.1f, 0.2f, 0.7f}});
  pl::SelectionOptions o;
  o.rule = pl::Rule::TopKPerClass;
  o.k = 2;
  const pl::Selection s = pl::select(idx, p, o);
  EXPECT_EQ(vec(s.indices), (std::vector<int64_t>{1, 2, 3}));  // class 0: the two most confident
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(s.short_classes, (std::vector<int64_t>{1, 2}));  // class 1 has none, class 2 one
}

// Class 0: six candidates; class 1: two; class 2: none.
const std::vector<std::vector<float>> kUnbalanced = {{0.90f, 0.05f, 0.05f}, {0.80f, 0.1f, 0.1f}, {0.70f, 0.2f, 0.1f},
                                                      {0.60f, 0.3f, 0.1f},   {0.55f, 0.4f, 0.05f}, {0.50f, 0.3f, 0.2f},
                                                      {0.1f, 0.85f, 0.05f},  {0.2f, 0.75f, 0.05f}};

TEST(PseudoLabelSelection, BalanceCapCutsEveryClassToTheSmallestNonEmptyOne) {
  pl::SelectionOptions o;
  o.rule = pl::Rule::TopKPerClass;
  o.k = 100;
  o.balance = pl::Balance::Cap;
  const pl::Selection s = pl::select(at::arange(8, at::kLong), probs(kUnbalanced), o);
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{2, 2, 0}));
  EXPECT_EQ(vec(s.indices), (std::vector<int64_t>{0, 1, 6, 7}));  // class 0 keeps its two most confident
  EXPECT_EQ(s.entries(), 4);
}

TEST(PseudoLabelSelection, BalanceDuplicateRepeatsSmallClassesUpToTheLargest) {
  pl::SelectionOptions o;
  o.rule = pl::Rule::TopKPerClass;
  o.k = 5;
  o.balance = pl::Balance::Duplicate;
  const pl::Selection s = pl::select(at::arange(8, at::kLong), probs(kUnbalanced), o);
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{5, 2, 0}));
  EXPECT_EQ(vec(s.indices), (std::vector<int64_t>{0, 1, 2, 3, 4, 6, 7}));
  // 5 entries per class: index 6 (0.85, the more confident) three times, index 7 twice.
  EXPECT_EQ(vec(s.copies), (std::vector<int64_t>{1, 1, 1, 1, 1, 3, 2}));
  EXPECT_EQ(s.entries(), 10);
}

TEST(PseudoLabelSelection, MaxFractionKeepsTheMostConfidentOverall) {
  pl::SelectionOptions o;
  o.rule = pl::Rule::Threshold;
  o.threshold = 0.0;
  o.max_fraction = 0.3;  // floor(0.3 * 8) = 2
  const pl::Selection s = pl::select(at::arange(8, at::kLong), probs(kUnbalanced), o);
  EXPECT_EQ(vec(s.indices), (std::vector<int64_t>{0, 6}));  // 0.90 and 0.85
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{1, 1, 0}));

  // 0.29 * 100 is 28.999999999999996 in binary: still 29 samples, the top 29 by confidence.
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor p = at::softmax(at::randn({100, 4}, g), 1);
  o.max_fraction = 0.29;
  const pl::Selection big = pl::select(at::arange(100, at::kLong), p, o);
  ASSERT_EQ(big.size(), 29);
  const float weakest_kept = big.confidence.min().item<float>();
  const at::Tensor all = std::get<0>(p.max(1));
  EXPECT_EQ(all.gt(weakest_kept).sum().item<int64_t>(), 28);
}

TEST(PseudoLabelSelection, RejectsNonFinitePredictionsAndBadShapes) {
  pl::SelectionOptions o;
  const at::Tensor p = probs({{0.5f, std::nanf("")}});
  try {
    pl::select(longs({4}), p, o);
    FAIL() << "a NaN prediction was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("prediction for sample 4 is not finite"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pl::select(longs({1, 2}), probs({{0.5f, 0.5f}}), o), std::invalid_argument);
}

TEST(PseudoLabelSelection, SharpenEqualsSoftmaxOfScaledLogits) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor logits = at::randn({6, 5}, g) * 3;
  const at::Tensor p = at::softmax(logits, 1);
  for (double t : {0.25, 0.5, 1.0, 2.0})
    EXPECT_TRUE(at::allclose(pl::sharpen(p, t), at::softmax(logits / t, 1), 1e-4, 1e-6)) << "T = " << t;
  EXPECT_TRUE(at::allclose(pl::sharpen(probs({{1.0f, 0.0f}}), 0.5), probs({{1.0f, 0.0f}})));  // log 0 stays 0
  EXPECT_THROW(pl::sharpen(p, 0.0), std::invalid_argument);
}

TEST(PseudoLabelSelection, OverlappingSplitsAreRefusedWithTheSharedIndex) {
  EXPECT_NO_THROW(pl::require_disjoint({{"labeled", longs({1, 2})}, {"unlabeled", longs({3, 4})}, {"test", longs({})}}));
  try {
    pl::require_disjoint({{"labeled", longs({1, 2})}, {"unlabeled", longs({5, 6})}, {"test", longs({6, 7})}});
    FAIL() << "overlapping splits were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unlabeled and test splits share 1 sample(s) (e.g. index 6)"), std::string::npos)
        << e.what();
  }
}

// ---- student data ---------------------------------------------------------------------------------

TEST(PseudoLabelStudentData, LabeledShareOversamplesTheLabeledSplit) {
  EXPECT_EQ(pl::labeled_entries(10, 90, 0.0), 10);
  EXPECT_EQ(pl::labeled_entries(10, 90, 0.5), 90);
  EXPECT_EQ(pl::labeled_entries(10, 0, 0.5), 10);   // nothing selected: the labeled split once
  EXPECT_EQ(pl::labeled_entries(10, 10, 0.25), 10); // never fewer than every labeled sample once

  // A pool of 30 (three classes of ten), all selected; 10 labeled samples.
  at::Tensor p = at::zeros({30, 3});
  for (int64_t i = 0; i < 30; ++i) {
    p[i][i % 3] = 0.9;
    p[i][(i + 1) % 3] = 0.1;
  }
  pl::SelectionOptions o;
  o.rule = pl::Rule::Threshold;
  o.threshold = 0.5;
  const pl::Selection s = pl::select(at::arange(100, 130, at::kLong), p, o);
  const at::Tensor labeled = at::arange(10, at::kLong), labeled_labels = at::arange(10, at::kLong).remainder(3);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(0);

  pl::StudentDataOptions opt;
  opt.labeled_share = 0.6;  // 0.6 * 30 / 0.4 = 45 labeled entries: every labeled sample 4 or 5 times
  opt.pseudo_weight = 0.5;
  const pl::StudentData d = pl::build_student_data(labeled, labeled_labels, s, p, opt, g);
  EXPECT_EQ(d.labeled_entries, 45);
  EXPECT_EQ(d.pseudo_entries, 30);
  ASSERT_EQ(d.view.indices.size(0), 75);
  const at::Tensor counts = at::bincount(d.view.indices.narrow(0, 0, 45), {}, 10);
  EXPECT_EQ(counts.min().item<int64_t>(), 4);
  EXPECT_EQ(counts.max().item<int64_t>(), 5);
  EXPECT_TRUE(torch::equal(d.view.targets.narrow(0, 0, 45), d.view.indices.narrow(0, 0, 45).remainder(3)))
      << "labeled entries carry their true labels";
  EXPECT_TRUE(torch::equal(d.view.targets.narrow(0, 45, 30), at::arange(30, at::kLong).remainder(3)));
  EXPECT_TRUE(torch::equal(d.view.weights, at::cat({at::ones({45}), at::full({30}, 0.5)})));
  EXPECT_TRUE(d.view.augment);

  opt.soft = true;
  opt.temperature = 0.5;
  opt.pseudo_weight = 1.0;
  opt.labeled_share = 0.0;
  opt.augment = false;
  const pl::StudentData soft = pl::build_student_data(labeled, labeled_labels, s, p, opt, g);
  EXPECT_EQ(soft.labeled_entries, 10);
  ASSERT_EQ(soft.view.targets.sizes().vec(), (std::vector<int64_t>{40, 3}));
  EXPECT_TRUE(torch::equal(soft.view.targets.narrow(0, 0, 10), at::one_hot(labeled_labels, 3).to(at::kFloat)));
  EXPECT_TRUE(at::allclose(soft.view.targets.narrow(0, 10, 30), pl::sharpen(p, 0.5)));
  EXPECT_FALSE(soft.view.weights.defined());
  EXPECT_FALSE(soft.view.augment);
}

// ---- the soft-label loss is PyTorch's cross-entropy with probability targets ------------------------

TEST(PseudoLabelLoss, SoftAndHardTargetsMatchPyTorchCrossEntropy) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor logits = at::randn({6, 4}, g) * 4;
  at::Tensor soft = pl::sharpen(at::softmax(at::randn({6, 4}, g), 1), 0.5);
  soft[5] = torch::tensor({0.0f, 1.0f, 0.0f, 0.0f});  // an exact one-hot row, as labeled samples get
  const at::Tensor hard = at::randint(0, 4, {6}, g);

  TempDir dir;
  nlohmann::json in;
  for (int64_t i = 0; i < 6; ++i) {
    std::vector<double> l, s;
    for (int64_t c = 0; c < 4; ++c) {
      l.push_back(logits[i][c].item<float>());
      s.push_back(soft[i][c].item<float>());
    }
    in["logits"].push_back(l);
    in["soft"].push_back(s);
    in["hard"].push_back(hard[i].item<int64_t>());
  }
  in["label_smoothing"] = 0.1;
  write_file(dir / "in.json", in.dump());
  const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " + LOOM_TEST_SOURCE_DIR +
                               "/tests/python/cross_entropy_reference.py " + (dir / "in.json").string());
  ASSERT_EQ(py.exit_code, 0) << py.output;
  const auto ref = nlohmann::json::parse(py.output);

  const at::Tensor soft_loss = host::per_sample_loss(logits, soft);
  const at::Tensor hard_loss = host::per_sample_loss(logits, hard);
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_NEAR(soft_loss[i].item<float>(), ref["soft"][i].get<double>(), 1e-5 * (1 + ref["soft"][i].get<double>()));
    EXPECT_NEAR(hard_loss[i].item<float>(), ref["hard"][i].get<double>(), 1e-5 * (1 + ref["hard"][i].get<double>()));
  }
  // [loss] label_smoothing: torch's cross_entropy(label_smoothing = 0.1), for both kinds of target.
  const at::Tensor soft_ls = host::per_sample_loss(logits, soft, 0.1), hard_ls = host::per_sample_loss(logits, hard, 0.1);
  for (int64_t i = 0; i < 6; ++i) {
    const double s = ref["soft_smoothed"][i].get<double>(), h = ref["hard_smoothed"][i].get<double>();
    EXPECT_NEAR(soft_ls[i].item<float>(), s, 1e-5 * (1 + s));
    EXPECT_NEAR(hard_ls[i].item<float>(), h, 1e-5 * (1 + h));
  }
  EXPECT_GT(std::abs(hard_ls[0].item<float>() - hard_loss[0].item<float>()), 1e-4) << "the smoothing has teeth";
  // A one-hot soft target is the hard label's loss.
  EXPECT_NEAR(soft_loss[5].item<float>(), host::per_sample_loss(logits.narrow(0, 5, 1), longs({1}))[0].item<float>(), 1e-6);
}

// ---- the host's predict(): eval mode, no augmentation -----------------------------------------------

/// A registry of the built plugins and a validated config for in-process host objects.
struct HostSetup {
  host::HostLogger logger;
  host::Registry registry;
  host::ResolvedConfig config;

  explicit HostSetup(const fs::path& config_file) {
    registry.scan({LOOM_TEST_PLUGIN_DIR});
    config = host::resolve(host::Config::load(config_file), registry);
  }
  std::shared_ptr<Dataset> dataset(RunContext& ctx) {
    return host::create_plugin<Dataset>(registry, config, Kind::Dataset, ctx, nullptr);
  }
};

TEST(PseudoLabelPredict, RunsInEvalModeWithoutAugmentation) {
  TempDir dir;
  // Dropout 0.9 and a random flip: either one, if predict() let it through, changes the probabilities.
  write_file(dir / "c.toml", "[run]\nseed = 3\nthreads = 1\ndevice = \"cpu\"\n[loader]\neval_batch_size = 16\n"
                             "[dataset]\nplugin = \"synthetic\"\nsamples = 256\nlabeled_fraction = 0.5\n"
                             "[[augmentation]]\nplugin = \"flip\"\n[model]\nplugin = \"mlp\"\nhidden = [32]\ndropout = 0.9\n");
  HostSetup setup(dir / "c.toml");
  host::HostRunContext ctx(setup.logger, c10::kCPU, 3, 1, dir / "run", {});
  fs::create_directories(dir / "run");
  host::CreatedPlugins created = host::create_run_plugins(setup.registry, setup.config, ctx, host::Slot<Communicator>(), true);
  host::RunPlugins& plugins = created.run;
  host::Trainer trainer(setup.config, setup.registry, ctx, plugins, nullptr, dir / "run");

  std::shared_ptr<Model> model = trainer.create_model();
  model->train();  // predict() must switch to eval mode itself, and switch back
  View pool = trainer.split(Split::Unlabeled);
  ASSERT_GT(pool.indices.size(0), 50);
  pool.augment = true;  // even a view that asks for augmentation is predicted clean
  const at::Tensor first = trainer.predict(*model, pool);
  const at::Tensor second = trainer.predict(*model, pool);
  EXPECT_TRUE(torch::equal(first, second));
  EXPECT_TRUE(model->is_training());

  torch::NoGradGuard no_grad;
  const at::Tensor x = plugins.dataset->load(pool.indices);
  model->eval();
  const at::Tensor clean = at::softmax(model->forward(x), 1);
  const at::Tensor flipped = at::softmax(model->forward(x.flip(-1)), 1);
  model->train();
  const at::Tensor dropped = at::softmax(model->forward(x), 1);
  EXPECT_TRUE(at::allclose(first, clean, 1e-5, 1e-7));
  // The check has teeth: augmentation or dropout would have shown.
  EXPECT_FALSE(at::allclose(first, flipped, 1e-3, 1e-5));
  EXPECT_FALSE(at::allclose(first, dropped, 1e-3, 1e-5));
}

// ---- splits -----------------------------------------------------------------------------------------

void expect_partition(const Dataset& d) {
  std::vector<std::pair<std::string, at::Tensor>> splits;
  int64_t total = 0;
  for (Split s : {Split::Labeled, Split::Unlabeled, Split::Val, Split::Test}) {
    splits.emplace_back(to_string(s), d.indices(s));
    total += d.indices(s).numel();
  }
  EXPECT_NO_THROW(pl::require_disjoint(splits));
  EXPECT_EQ(total, d.size()) << "the four splits cover every sample exactly once";
  EXPECT_GT(d.indices(Split::Unlabeled).numel(), 0);
}

TEST(PseudoLabelSplits, LabeledUnlabeledValAndTestAreDisjoint) {
  TempDir dir;
  write_file(dir / "s.toml", "[dataset]\nplugin = \"synthetic\"\nsamples = 2048\nlabeled_fraction = 0.1\n"
                             "[model]\nplugin = \"mlp\"\n");
  HostSetup synthetic(dir / "s.toml");
  host::HostRunContext ctx(synthetic.logger, c10::kCPU, 0, 1, {}, {});
  expect_partition(*synthetic.dataset(ctx));

  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (scripts/setup.sh installs dataset-fashion-mnist)";
  HostSetup fm(std::string(LOOM_TEST_SOURCE_DIR) + "/configs/fashion-mnist-ssl.toml");
  const auto d = fm.dataset(ctx);
  expect_partition(*d);
  EXPECT_EQ(d->indices(Split::Labeled).numel(), 1000);  // 100 per class
  EXPECT_EQ(d->indices(Split::Test).numel(), 10000);    // the official test set, untouched
}

// ---- end to end -------------------------------------------------------------------------------------

std::string synthetic_args(const fs::path& out, const std::vector<std::string>& sets) {
  std::string args = "run " + kSynthetic + " --set run.output_dir=" + out.string();
  for (const auto& s : sets) args += " --set " + s;
  return args;
}

const std::vector<std::string> kTwoRounds = {
    "run.epochs=2",          "dataset.samples=2048",       "dataset.labeled_fraction=0.1",
    "self_training.plugin=pseudo-label", "self_training.rounds=2", "self_training.k=100",
    "self_training.finetune_epochs=1"};

TEST(PseudoLabelEndToEnd, TwoRoundsOnSyntheticData) {
  TempDir out;
  const CommandResult r = loom(synthetic_args(out.path(), kTwoRounds));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path run_dir = only_run_dir(out.path(), "synthetic");

  // Every stage trained its epochs; one round record per round.
  std::map<std::string, int> epochs;
  for (const auto& m : read_jsonl(run_dir / "metrics.jsonl"))
    if (m.contains("epoch")) ++epochs[m["stage"].get<std::string>()];
  EXPECT_EQ(epochs, (std::map<std::string, int>{{"teacher", 2}, {"round1/student", 2}, {"round1/finetune", 1},
                                                 {"round2/student", 2}, {"round2/finetune", 1}}));
  const auto rounds = round_records(run_dir);
  ASSERT_EQ(rounds.size(), 3u);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rounds[i]["round"], i);
    EXPECT_GT(rounds[i]["test_accuracy"].get<double>(), 0.5);
    EXPECT_TRUE(rounds[i].contains("val_accuracy"));
  }
  EXPECT_EQ(rounds[0]["stage"], "teacher");
  EXPECT_FALSE(rounds[0].contains("selected_total"));
  EXPECT_EQ(rounds[1]["stage"], "round1/finetune");

  // The dataset and model as the run had them, made here in-process from its resolved config.
  HostSetup setup(run_dir / "config.resolved.toml");
  host::HostRunContext ctx(setup.logger, c10::kCPU, 7, 1, {}, {});
  const auto dataset = setup.dataset(ctx);
  const at::Tensor pool = dataset->indices(Split::Unlabeled);

  for (int64_t round : {1, 2}) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string name = "pseudo_labels_round" + std::to_string(round);
    const auto& rec = rounds[static_cast<size_t>(round)];
    for (const char* c : {"selected/0", "selected/1", "selected/2", "selected/3"}) EXPECT_EQ(rec[c], 100) << c;
    EXPECT_EQ(rec["selected_total"], 400);
    EXPECT_EQ(rec["pseudo_entries"], 400);
    EXPECT_EQ(rec["labeled_entries"], dataset->indices(Split::Labeled).numel());
    EXPECT_GT(rec["pseudo_label_accuracy"].get<double>(), 0.8);
    EXPECT_GT(rec["mean_confidence"].get<double>(), 0.5);

    // The arrays, as numpy reads them.
    const auto npy = read_npy_dir(run_dir / name);
    ASSERT_EQ(npy.size(), 5u) << npy.dump();
    EXPECT_EQ(npy["index"]["dtype"], "int64");
    EXPECT_EQ(npy["label"]["dtype"], "int64");
    EXPECT_EQ(npy["confidence"]["dtype"], "float32");
    EXPECT_EQ(npy["copies"]["dtype"], "int64");
    EXPECT_EQ(npy["confusion"]["dtype"], "int64");
    const auto index = npy["index"]["values"].get<std::vector<int64_t>>();
    const auto label = npy["label"]["values"].get<std::vector<int64_t>>();
    // The confusion counts every selected sample once: row = its hidden label, column = its pseudo label.
    const auto confusion = npy["confusion"]["values"].get<std::vector<std::vector<int64_t>>>();
    ASSERT_EQ(confusion.size(), 4u);
    std::vector<std::vector<int64_t>> expected_confusion(4, std::vector<int64_t>(4, 0));
    {
      const at::Tensor hidden = dataset->labels().to(at::kLong).index_select(0, longs(index));
      for (size_t i = 0; i < index.size(); ++i) ++expected_confusion[static_cast<size_t>(hidden[static_cast<int64_t>(i)].item<int64_t>())][static_cast<size_t>(label[i])];
    }
    EXPECT_EQ(confusion, expected_confusion);
    const auto confidence = npy["confidence"]["values"].get<std::vector<double>>();
    ASSERT_EQ(index.size(), 400u);
    EXPECT_TRUE(std::is_sorted(index.begin(), index.end()));
    const at::Tensor selected = longs(index);
    EXPECT_TRUE(at::isin(selected, pool).all().item<bool>()) << "pseudo labels only for unlabeled samples";
    EXPECT_EQ(std::get<0>(at::unique_consecutive(selected)).numel(), 400);
    EXPECT_EQ(at::bincount(longs(label), {}, 4).min().item<int64_t>(), 100);

    // The JSON names the teacher file by its hash, and the rule.
    const auto j = nlohmann::json::parse(read_file(run_dir / (name + ".json")));
    const std::string model = "models/round" + std::to_string(round) + "/teacher.pt";
    EXPECT_EQ(j["teacher"]["model"], model);
    EXPECT_EQ(j["teacher"]["sha256"], host::sha256_file(run_dir / model));
    EXPECT_EQ(j["teacher"]["stage"], round == 1 ? "teacher" : "round1/finetune");
    EXPECT_EQ(j["selection"]["rule"], "top-k-per-class");
    EXPECT_EQ(j["selection"]["k"], 100);
    EXPECT_EQ(j["selected_per_class"].get<std::vector<int64_t>>(), (std::vector<int64_t>{100, 100, 100, 100}));
    EXPECT_EQ(j["pool"]["size"], pool.numel());

    // Clean teacher predictions: the saved teacher in eval mode on load() (no flip) gives exactly the
    // recorded confidences and labels; the run's dropout (0.1) or flip would not.
    auto teacher = setup.registry.create<Model>(*setup.config.one(Kind::Model).feature,
                                                CreateContext{setup.config.one(Kind::Model).params, ctx, dataset});
    host::read_model(run_dir / model, *teacher);
    teacher->eval();
    torch::NoGradGuard no_grad;
    const auto [conf, pred] = at::softmax(teacher->forward(dataset->load(selected)), 1).max(1);
    std::vector<float> recorded(confidence.begin(), confidence.end());
    EXPECT_TRUE(at::allclose(conf, torch::tensor(recorded), 1e-5, 1e-7));
    EXPECT_TRUE(torch::equal(pred, longs(label)));
  }

  const auto summary = nlohmann::json::parse(read_file(run_dir / "summary.json"));
  for (const char* key : {"round0_test_accuracy", "round1_test_accuracy", "round2_test_accuracy",
                          "round1_pseudo_label_accuracy", "round2_pseudo_label_accuracy", "round2_selected"})
    EXPECT_TRUE(summary.contains(key)) << key << " missing in " << summary.dump(2);
  EXPECT_EQ(summary["round2_test_accuracy"], summary["test_accuracy"]) << "the last student is the final model";
  EXPECT_EQ(summary["round1_test_accuracy"], rounds[1]["test_accuracy"]);
  const auto log = nlohmann::json::parse(read_file(run_dir / "pseudo_label_rounds.json"));
  EXPECT_EQ(log["rounds"].size(), 3u);
  EXPECT_FALSE(fs::exists(run_dir / ".pseudo_labels_round1.partial"));
}

TEST(PseudoLabelEndToEnd, SoftLabelsThresholdDuplicateBalanceAndLabeledShare) {
  TempDir out;
  const CommandResult r = loom(synthetic_args(
      out.path(), {"run.epochs=1", "dataset.samples=1024", "dataset.labeled_fraction=0.1",
                   "self_training.plugin=pseudo-label", "self_training.teacher_epochs=4",
                   "self_training.selection=threshold",
                   "self_training.threshold=0.6", "self_training.balance=true", "self_training.balance_mode=duplicate",
                   "self_training.labels=soft", "self_training.temperature=0.5", "self_training.labeled_share=0.5",
                   "self_training.student_init=teacher", "self_training.noise=false", "self_training.pseudo_weight=0.8"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path run_dir = only_run_dir(out.path(), "synthetic");
  const auto npy = read_npy_dir(run_dir / "pseudo_labels_round1");
  ASSERT_TRUE(npy.contains("probabilities")) << npy.dump();
  EXPECT_FALSE(npy.contains("label"));
  EXPECT_EQ(npy["probabilities"]["dtype"], "float32");
  const auto p = npy["probabilities"]["values"].get<std::vector<std::vector<double>>>();
  const auto copies = npy["copies"]["values"].get<std::vector<int64_t>>();
  const auto confidence = npy["confidence"]["values"].get<std::vector<double>>();
  ASSERT_FALSE(p.empty());
  ASSERT_EQ(p[0].size(), 4u);
  std::vector<int64_t> entries_per_class(4, 0);
  for (size_t i = 0; i < p.size(); ++i) {
    double sum = 0;
    for (double v : p[i]) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_GE(confidence[i], 0.6);
    const auto top = std::max_element(p[i].begin(), p[i].end()) - p[i].begin();
    EXPECT_GE(p[i][static_cast<size_t>(top)], confidence[i] - 1e-6) << "T = 0.5 sharpens";
    entries_per_class[static_cast<size_t>(top)] += copies[i];
  }
  // Duplicate balancing: every non-empty class fills the largest class's count.
  const int64_t largest = *std::max_element(entries_per_class.begin(), entries_per_class.end());
  for (int64_t e : entries_per_class) EXPECT_TRUE(e == 0 || e == largest) << e << " vs " << largest;
  EXPECT_GT(*std::max_element(copies.begin(), copies.end()), 1) << "the classes were unequal: some were repeated";

  const auto rec = round_records(run_dir).at(1);
  const int64_t pseudo = rec["pseudo_entries"].get<int64_t>();
  EXPECT_EQ(pseudo, std::accumulate(copies.begin(), copies.end(), int64_t{0}));
  EXPECT_EQ(rec["labeled_entries"].get<int64_t>(), std::max<int64_t>(92, pseudo));  // share 0.5: as many as pseudo
  const auto j = nlohmann::json::parse(read_file(run_dir / "pseudo_labels_round1.json"));
  EXPECT_EQ(j["selection"]["rule"], "threshold");
  EXPECT_EQ(j["selection"]["balance"], "duplicate");
  EXPECT_EQ(j["selection"]["labels"], "soft");
  EXPECT_EQ(j["files"]["probabilities"], "pseudo_labels_round1/probabilities.npy");
}

TEST(PseudoLabelEndToEnd, ADatasetWithoutUnlabeledSamplesIsAClearError) {
  TempDir out;
  const CommandResult r = loom(synthetic_args(out.path(), {"self_training.plugin=pseudo-label"}));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("the dataset's unlabeled split is empty: there is nothing to pseudo-label"), std::string::npos)
      << r.output;
  const fs::path run_dir = only_run_dir(out.path(), "synthetic");
  EXPECT_FALSE(fs::exists(run_dir / "stages")) << "nothing was trained";
}

TEST(PseudoLabelResume, StoppedAtARoundBoundaryResumesToTheSameWeights) {
  const std::vector<std::string> sets = {"run.epochs=2", "dataset.samples=4096", "dataset.labeled_fraction=0.1",
                                         "loader.batch_size=16", "self_training.plugin=pseudo-label",
                                         "self_training.rounds=2", "self_training.k=300",
                                         "self_training.finetune_epochs=1"};
  TempDir a, b;
  const CommandResult full = loom(synthetic_args(a.path(), sets));
  ASSERT_EQ(full.exit_code, 0) << full.output;

  std::vector<std::string> args = {LOOM_TEST_BIN, "run", kSynthetic, "--set", "run.output_dir=" + b.path().string()};
  for (const auto& s : sets) args.insert(args.end(), {"--set", s});
  // Round 1 is complete and round 2 has selected its pseudo labels: the stop lands in round 2's student.
  bool stopped = false;
  const fs::path runs = b.path() / "synthetic";
  const int code = run_and_stop_when(args, [&] { return some_run_has(runs, "pseudo_labels_round2.json"); },
                                     std::chrono::milliseconds(0), &stopped);
  ASSERT_TRUE(stopped) << "round 2 never started";
  ASSERT_EQ(code, 143) << "expected the SIGTERM-stopped run to exit 143 (it may have finished before the signal)";
  const fs::path interrupted = only_run_dir(b.path(), "synthetic");
  ASSERT_FALSE(fs::exists(interrupted / "model.pt"));

  const CommandResult resumed = loom("run --resume " + interrupted.string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming stage 'round2/student'"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("stage 'round1/finetune' had finished"), std::string::npos) << resumed.output;
  EXPECT_EQ(resumed.output.find("differ from those the interrupted run recorded"), std::string::npos) << resumed.output;

  const fs::path reference = only_run_dir(a.path(), "synthetic");
  const auto expected = load_weights(reference / "model.pt");
  const auto actual = load_weights(interrupted / "model.pt");
  ASSERT_FALSE(expected.empty());
  ASSERT_EQ(expected.size(), actual.size());
  for (const auto& [name, tensor] : expected)
    EXPECT_TRUE(torch::equal(tensor, actual.at(name))) << name << " differs after resume";
  // The same labels from the same teachers (the JSONs hold the teacher files' hashes).
  for (const char* f : {"pseudo_labels_round1/index.npy", "pseudo_labels_round1/label.npy",
                        "pseudo_labels_round2/index.npy", "pseudo_labels_round2/confidence.npy",
                        "pseudo_labels_round1.json", "pseudo_labels_round2.json"})
    EXPECT_EQ(read_file(reference / f), read_file(interrupted / f)) << f;

  // Each round reported once, with the same numbers.
  const auto ra = round_records(reference), rb = round_records(interrupted);
  ASSERT_EQ(rb.size(), 3u);
  for (size_t i = 0; i < ra.size(); ++i) {
    EXPECT_EQ(ra[i]["round"], rb[i]["round"]);
    EXPECT_EQ(ra[i].value("selected_total", -1), rb[i].value("selected_total", -1));
    EXPECT_DOUBLE_EQ(ra[i]["test_accuracy"].get<double>(), rb[i]["test_accuracy"].get<double>());
  }
  const auto sa = nlohmann::json::parse(read_file(reference / "summary.json"));
  const auto sb = nlohmann::json::parse(read_file(interrupted / "summary.json"));
  for (const char* key : {"round0_test_accuracy", "round1_test_accuracy", "round2_test_accuracy"})
    EXPECT_EQ(sa[key], sb[key]) << key;
}

}  // namespace
}  // namespace loom::test
