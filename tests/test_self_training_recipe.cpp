// The self-training recipe pieces of SDK 0.5: curriculum selection (unit, pl::select), the teacher's and
// the students' augmentation pipelines (a recording op counts their calls), predict_with (EMA / live
// weights of the teacher's stage), resume of a curriculum run, [student_model], [run] val_every, the
// TensorBoard sink's round curves, and the quick self-training experiment (scripts/ssl-experiment.sh).
#include "run_util.h"

#include "selection.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

namespace loom::test {
namespace {

namespace pl = loom::pseudo_label;

const std::string kSynthetic = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";
const std::string kRecordingAugmentationDir = std::string(LOOM_TEST_FIXTURE_DIR) + "/recording_augmentation";
const std::string kRecordingCallbackDir = std::string(LOOM_TEST_FIXTURE_DIR) + "/recording";

// ---- curriculum selection (unit) ------------------------------------------------------------------------

/// A pool of dataset indices with, per sample, its predicted class and that class's probability; the
/// other classes share the rest evenly (below it, so the argmax is the given class).
struct Pool {
  std::vector<int64_t> index;
  std::vector<int64_t> cls;
  std::vector<float> confidence;
  int64_t classes = 4;

  void add(int64_t i, int64_t c, float p) {
    index.push_back(i);
    cls.push_back(c);
    confidence.push_back(p);
  }
  at::Tensor indices() const { return torch::tensor(index, at::kLong); }
  at::Tensor probabilities() const {
    at::Tensor p = at::empty({static_cast<int64_t>(index.size()), classes}, at::kFloat);
    for (size_t i = 0; i < index.size(); ++i)
      for (int64_t c = 0; c < classes; ++c)
        p[static_cast<int64_t>(i)][c] =
            c == cls[i] ? confidence[i] : (1.0f - confidence[i]) / static_cast<float>(classes - 1);
    return p;
  }
};

/// Class 0: seven candidates with a three-way tie at 0.8 (indices 33, 12, 5, in that pool order); class 1:
/// five, with a tie at 0.85 (50 before 7 in the pool); class 2: one; class 3: none.
Pool curriculum_pool() {
  Pool p;
  p.add(40, 0, 0.90f);
  p.add(33, 0, 0.80f);
  p.add(12, 0, 0.80f);
  p.add(5, 0, 0.80f);
  p.add(27, 0, 0.70f);
  p.add(18, 0, 0.60f);
  p.add(9, 0, 0.50f);
  p.add(2, 1, 0.95f);
  p.add(50, 1, 0.85f);
  p.add(7, 1, 0.85f);
  p.add(31, 1, 0.60f);
  p.add(44, 1, 0.45f);
  p.add(21, 2, 0.55f);
  return p;
}

pl::SelectionOptions curriculum(double percentile, bool per_class = true) {
  pl::SelectionOptions o;
  o.rule = pl::Rule::Curriculum;
  o.percentile = percentile;
  o.per_class = per_class;
  return o;
}

std::vector<int64_t> sorted(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(CurriculumSelection, KeepsTheCeilOfThePercentileOfEachClass) {
  const Pool pool = curriculum_pool();
  struct Case {
    double percentile;
    std::vector<int64_t> per_class;
    std::vector<int64_t> indices;
  };
  // Class 0 has 7 candidates, class 1 five, class 2 one, class 3 none. ceil(p/100 * n):
  //   20 %: 1.4 → 2, 1.0 → 1, 0.2 → 1 (a non-empty class keeps at least one), 0
  //   40 %: 2.8 → 3 (5 and 12 win the tie at 0.8 against 33), 2.0 → 2 (7 wins the tie at 0.85 against 50)
  //   50 %: 3.5 → 4, 2.5 → 3
  //   100 %: everything
  const std::vector<Case> cases = {
      {20, {2, 1, 1, 0}, {2, 5, 21, 40}},
      {40, {3, 2, 1, 0}, {2, 5, 7, 12, 21, 40}},
      {50, {4, 3, 1, 0}, {2, 5, 7, 12, 21, 33, 40, 50}},
      {100, {7, 5, 1, 0}, sorted(pool.index)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("percentile " + std::to_string(c.percentile));
    const pl::Selection s = pl::select(pool.indices(), pool.probabilities(), curriculum(c.percentile));
    EXPECT_EQ(s.candidates_per_class, (std::vector<int64_t>{7, 5, 1, 0}));
    EXPECT_EQ(s.selected_per_class, c.per_class);
    EXPECT_EQ(vec(s.indices), c.indices);
    EXPECT_TRUE(s.short_classes.empty()) << "only top-k reports short classes";
    // Each kept sample's label, confidence, copies and pool row are its own.
    ASSERT_EQ(s.size(), static_cast<int64_t>(c.indices.size()));
    for (int64_t i = 0; i < s.size(); ++i) {
      const int64_t row = s.positions[i].item<int64_t>();
      EXPECT_EQ(pool.index[static_cast<size_t>(row)], s.indices[i].item<int64_t>());
      EXPECT_EQ(pool.cls[static_cast<size_t>(row)], s.labels[i].item<int64_t>());
      EXPECT_EQ(pool.confidence[static_cast<size_t>(row)], s.confidence[i].item<float>());
      EXPECT_EQ(s.copies[i].item<int64_t>(), 1);
    }
  }
}

TEST(CurriculumSelection, TiesBreakByDatasetIndexWhateverThePoolOrder) {
  const Pool pool = curriculum_pool();
  const at::Tensor idx = pool.indices(), p = pool.probabilities();
  for (double percentile : {20.0, 40.0, 50.0, 60.0}) {
    SCOPED_TRACE("percentile " + std::to_string(percentile));
    const pl::Selection s = pl::select(idx, p, curriculum(percentile));
    for (uint64_t seed : {1u, 2u, 3u}) {
      at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
      const at::Tensor order = at::randperm(idx.size(0), g, at::TensorOptions().dtype(at::kLong));
      const pl::Selection again = pl::select(idx.index_select(0, order), p.index_select(0, order), curriculum(percentile));
      EXPECT_EQ(vec(again.indices), vec(s.indices));
      EXPECT_EQ(vec(again.labels), vec(s.labels));
      EXPECT_TRUE(torch::equal(again.confidence, s.confidence));
      // positions are rows of the permuted pool: they lead back to the same samples
      EXPECT_EQ(vec(idx.index_select(0, order).index_select(0, again.positions)), vec(s.indices));
    }
  }
  // 60 % of class 0 is ceil(4.2) = 5: the whole tie at 0.8 and the 0.7 sample; of class 1 ceil(3.0) = 3.
  EXPECT_EQ(pl::select(idx, p, curriculum(60)).selected_per_class, (std::vector<int64_t>{5, 3, 1, 0}));
}

TEST(CurriculumSelection, SmallAndEmptyClassesAndTheEpsilonGuard) {
  // One candidate in class 1, none in class 2: 20 % keeps the one (ceil 0.2 = 1) and nothing of class 2.
  Pool pool;
  pool.classes = 3;
  for (int64_t i = 0; i < 55; ++i) pool.add(100 + i, 0, 0.5f + 0.005f * static_cast<float>(i));
  pool.add(7, 1, 0.4f);
  const pl::Selection s = pl::select(pool.indices(), pool.probabilities(), curriculum(20));
  EXPECT_EQ(s.candidates_per_class, (std::vector<int64_t>{55, 1, 0}));
  // 0.2 * 55 is 11.000000000000002 in binary; the count is 11, not 12.
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{11, 1, 0}));
  std::vector<int64_t> expected = {7};
  for (int64_t i = 44; i < 55; ++i) expected.push_back(100 + i);  // the 11 most confident of class 0
  EXPECT_EQ(vec(s.indices), expected);

  // A pool without any candidate of a class at 100 %: every sample, and that class keeps none.
  const pl::Selection all = pl::select(pool.indices(), pool.probabilities(), curriculum(100));
  EXPECT_EQ(all.selected_per_class, (std::vector<int64_t>{55, 1, 0}));
  EXPECT_EQ(all.size(), 56);

  // An empty pool selects nothing, with typed empty tensors.
  const pl::Selection none =
      pl::select(at::empty({0}, at::kLong), at::empty({0, 3}, at::kFloat), curriculum(50));
  EXPECT_EQ(none.size(), 0);
  EXPECT_EQ(none.selected_per_class, (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(none.indices.scalar_type(), at::kLong);
}

TEST(CurriculumSelection, PerClassFalseTakesTheTopOfTheWholePool) {
  const Pool pool = curriculum_pool();  // 13 samples
  // 20 %: ceil(2.6) = 3 → 2 (0.95), 40 (0.9), then the tie at 0.85: 7 before 50. Class 2's only sample,
  // which per class would always be kept, is not.
  pl::Selection s = pl::select(pool.indices(), pool.probabilities(), curriculum(20, false));
  EXPECT_EQ(vec(s.indices), (std::vector<int64_t>{2, 7, 40}));
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{1, 2, 0, 0}));
  EXPECT_EQ(s.candidates_per_class, (std::vector<int64_t>{7, 5, 1, 0}));
  // 40 %: ceil(5.2) = 6 → + 50, then two of the tie at 0.8 (5 and 12, not 33).
  s = pl::select(pool.indices(), pool.probabilities(), curriculum(40, false));
  EXPECT_EQ(vec(s.indices), (std::vector<int64_t>{2, 5, 7, 12, 40, 50}));
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{3, 3, 0, 0}));
  // The pool's order does not matter here either.
  const at::Tensor reversed = at::arange(12, -1, -1, at::kLong);
  EXPECT_EQ(vec(pl::select(pool.indices().index_select(0, reversed), pool.probabilities().index_select(0, reversed),
                           curriculum(40, false)).indices),
            vec(s.indices));
  // 100 %: the whole pool.
  s = pl::select(pool.indices(), pool.probabilities(), curriculum(100, false));
  EXPECT_EQ(vec(s.indices), sorted(pool.index));
  EXPECT_EQ(s.selected_per_class, (std::vector<int64_t>{7, 5, 1, 0}));
}

TEST(CurriculumSelection, OutOfRangePercentilesAreRejected) {
  const Pool pool = curriculum_pool();
  for (double bad : {0.0, -5.0, 100.5, 1000.0, std::nan("")}) {
    SCOPED_TRACE("percentile " + std::to_string(bad));
    try {
      pl::select(pool.indices(), pool.probabilities(), curriculum(bad));
      FAIL() << "percentile " << bad << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("a curriculum percentile must be in (0, 100]"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(pl::select(pool.indices(), pool.probabilities(), curriculum(0.001)));
  EXPECT_STREQ(pl::to_string(pl::Rule::Curriculum), "curriculum");
}

// ---- end to end helpers ---------------------------------------------------------------------------------

/// The epoch records of each stage, in order.
std::map<std::string, std::vector<nlohmann::json>> epochs_by_stage(const fs::path& run_dir) {
  std::map<std::string, std::vector<nlohmann::json>> out;
  for (auto& m : read_epoch_records(run_dir / "metrics.jsonl")) out[m["stage"].get<std::string>()].push_back(m);
  return out;
}

/// Micro-batches a stage trained: with no accumulation, one optimizer step each.
int64_t steps_of(const std::vector<nlohmann::json>& epochs) {
  int64_t n = 0;
  for (const auto& e : epochs) n += e["optimizer_steps_in_epoch"].get<int64_t>();
  return n;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// The synthetic test config plus `extra_toml`, written to `dir`/c.toml; `loom run` of it with --set's.
struct Recipe {
  TempDir dir;
  explicit Recipe(const std::string& extra_toml = "") { write_file(dir / "c.toml", read_file(kSynthetic) + "\n" + extra_toml); }
  fs::path config() const { return dir / "c.toml"; }
  std::vector<std::string> args(const std::string& out, const std::vector<std::string>& sets) const {
    return run_argv(config(), dir / out, sets);
  }
  CommandResult run_to_end(const std::string& out, const std::vector<std::string>& sets,
                           const std::string& plugin_path = "") const {
    return loom(command_line(args(out, sets), 1), plugin_path);
  }
  /// The run directory, or an empty path when the run made none.
  fs::path run_dir(const std::string& out) const {
    return fs::is_directory(dir / out / "synthetic") ? only_run_dir(dir / out, "synthetic") : fs::path();
  }
};

const std::vector<std::string> kOneRound = {"dataset.samples=1024", "dataset.labeled_fraction=0.1",
                                            "self_training.plugin=pseudo-label", "self_training.rounds=1",
                                            "self_training.k=50"};

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

// ---- teacher and student augmentation pipelines ------------------------------------------------------

/// The default pipeline (the synthetic config's flip, then a recorder writing a.txt) and a "strong"
/// pipeline (a recorder writing b.txt).
std::string two_recorded_pipelines(const fs::path& dir) {
  return "[[augmentation]]\nplugin = \"recording-augmentation\"\nfile = \"" + (dir / "a.txt").string() +
         "\"\n[[augmentation]]\nplugin = \"recording-augmentation\"\npipeline = \"strong\"\nfile = \"" +
         (dir / "b.txt").string() + "\"\n";
}

struct Call {
  int64_t size, label_sum;
  bool weighted;
};

std::vector<Call> calls_in(const fs::path& file) {
  std::vector<Call> out;
  for (const auto& line : lines_of(file)) {
    std::istringstream in(line);
    Call c{};
    int w = -1;
    in >> c.size >> c.label_sum >> w;
    EXPECT_TRUE(in && (w == 0 || w == 1)) << "malformed line '" << line << "' in " << file;
    c.weighted = w == 1;
    out.push_back(c);
  }
  return out;
}

int64_t total_size(const std::vector<Call>& calls, size_t from, size_t to) {
  int64_t n = 0;
  for (size_t i = from; i < to; ++i) n += calls[i].size;
  return n;
}

int64_t total_labels(const std::vector<Call>& calls, size_t from, size_t to) {
  int64_t n = 0;
  for (size_t i = from; i < to; ++i) n += calls[i].label_sum;
  return n;
}

TEST(SelfTrainingRecipe, TeacherAndStudentsTrainWithTheirOwnPipelinesAndPredictionsWithNone) {
  Recipe r;
  write_file(r.config(), read_file(r.config()) + two_recorded_pipelines(r.dir.path()));
  const int64_t teacher_epochs = 3, student_epochs = 2, finetune_epochs = 1;
  const CommandResult c = r.run_to_end(
      "out",
      with(kOneRound, {"self_training.teacher_epochs=3", "self_training.student_epochs=2",
                       "self_training.finetune_epochs=1", "self_training.pseudo_weight=0.5",
                       "self_training.teacher_augmentation=default", "self_training.student_augmentation=strong"}),
      kRecordingAugmentationDir);
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const fs::path run_dir = r.run_dir("out");

  const auto stages = epochs_by_stage(run_dir);
  ASSERT_EQ(stages.at("teacher").size(), 3u);
  ASSERT_EQ(stages.at("round1/student").size(), 2u);
  ASSERT_EQ(stages.at("round1/finetune").size(), 1u);
  const int64_t micro = stages.at("teacher")[0]["micro_batch_size"].get<int64_t>();
  ASSERT_EQ(micro, 32);
  const auto rec = round_records(run_dir).at(1);
  const int64_t labeled = rec["labeled_entries"].get<int64_t>(), pseudo = rec["pseudo_entries"].get<int64_t>();
  ASSERT_EQ(labeled, 92);
  ASSERT_EQ(pseudo, 200);  // k = 50 of each of the four classes

  // Pipeline "default": the teacher's micro-batches exactly — the pool's predictions (and the round's
  // evaluations) never went through it.
  const std::vector<Call> a = calls_in(r.dir / "a.txt");
  const int64_t teacher_steps = steps_of(stages.at("teacher"));
  EXPECT_EQ(teacher_steps, teacher_epochs * ceil_div(labeled, micro));
  ASSERT_EQ(static_cast<int64_t>(a.size()), teacher_steps);
  EXPECT_EQ(total_size(a, 0, a.size()), teacher_epochs * labeled);
  for (const Call& call : a) EXPECT_FALSE(call.weighted) << "the teacher's labeled batches carry no weights";

  // Pipeline "strong": the student's micro-batches, then the fine-tuning's, exactly.
  const std::vector<Call> b = calls_in(r.dir / "b.txt");
  const int64_t student_steps = steps_of(stages.at("round1/student"));
  const int64_t finetune_steps = steps_of(stages.at("round1/finetune"));
  EXPECT_EQ(student_steps, student_epochs * ceil_div(labeled + pseudo, micro));
  EXPECT_EQ(finetune_steps, finetune_epochs * ceil_div(labeled, micro));
  ASSERT_EQ(static_cast<int64_t>(b.size()), student_steps + finetune_steps);
  const auto split = static_cast<size_t>(student_steps);
  EXPECT_EQ(total_size(b, 0, split), student_epochs * (labeled + pseudo));
  EXPECT_EQ(total_size(b, split, b.size()), finetune_epochs * labeled);
  for (size_t i = 0; i < split; ++i) EXPECT_TRUE(b[i].weighted) << "pseudo_weight 0.5: the student's batches are weighted";

  // The labels each pipeline saw: an epoch of the teacher sums the labeled split's labels; an epoch of the
  // student adds the pseudo labels (label.npy) to them; fine-tuning sees the labeled split again.
  const int64_t labeled_sum = total_labels(a, 0, a.size()) / teacher_epochs;
  EXPECT_EQ(total_labels(a, 0, a.size()), teacher_epochs * labeled_sum);
  const auto npy = read_npy_dir(run_dir / "pseudo_labels_round1");
  const auto pseudo_labels = npy["label"]["values"].get<std::vector<int64_t>>();
  ASSERT_EQ(static_cast<int64_t>(pseudo_labels.size()), pseudo);
  const int64_t pseudo_sum = std::accumulate(pseudo_labels.begin(), pseudo_labels.end(), int64_t{0});
  EXPECT_EQ(total_labels(b, 0, split), student_epochs * (labeled_sum + pseudo_sum));
  EXPECT_EQ(total_labels(b, split, b.size()), finetune_epochs * labeled_sum);
  EXPECT_NE(c.output.find("stage 'round1/student' augments its batches with pipeline 'strong'"), std::string::npos)
      << c.output;
}

TEST(SelfTrainingRecipe, WithoutNoiseTheStudentPipelineIsNeverCalled) {
  Recipe r;
  write_file(r.config(), read_file(r.config()) + two_recorded_pipelines(r.dir.path()));
  const CommandResult c = r.run_to_end(
      "out",
      with(kOneRound, {"run.epochs=2", "self_training.finetune_epochs=1", "self_training.noise=false",
                       "self_training.student_augmentation=strong"}),
      kRecordingAugmentationDir);
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const auto stages = epochs_by_stage(r.run_dir("out"));
  ASSERT_EQ(stages.at("round1/student").size(), 2u);
  EXPECT_EQ(static_cast<int64_t>(calls_in(r.dir / "a.txt").size()), steps_of(stages.at("teacher")));
  EXPECT_GT(steps_of(stages.at("round1/student")), 0);
  EXPECT_TRUE(fs::exists(r.dir / "b.txt")) << "the strong pipeline's recorder was created";
  EXPECT_TRUE(calls_in(r.dir / "b.txt").empty()) << read_file(r.dir / "b.txt");
}

TEST(SelfTrainingRecipe, AnUnknownPipelineIsAConfigErrorAtItsPlace) {
  for (const std::string key : {"teacher_augmentation", "student_augmentation"}) {
    SCOPED_TRACE(key);
    Recipe r;
    write_file(r.config(), read_file(r.config()) + two_recorded_pipelines(r.dir.path()) +
                               "\n[self_training]\nplugin = \"pseudo-label\"\n" + key + " = \"strnog\"\n");
    // `loom check` refuses it (ParamSpec::pipeline_name), at the key's line and column …
    const CommandResult check = loom("check " + r.config().string(), kRecordingAugmentationDir);
    EXPECT_EQ(check.exit_code, 2) << check.output;
    EXPECT_NE(check.output.find("'" + key + "' in [self_training] is \"strnog\", but no [[augmentation]] table has "
                                "pipeline = \"strnog\" (pipelines: default, strong)"),
              std::string::npos)
        << check.output;
    EXPECT_NE(check.output.find(r.config().string() + ":"), std::string::npos) << check.output;
    // … and so does a run, before it creates anything.
    const CommandResult c = r.run_to_end("out", with(kOneRound, {}), kRecordingAugmentationDir);
    EXPECT_EQ(c.exit_code, 2) << c.output;
    EXPECT_TRUE(r.run_dir("out").empty()) << "no run directory for a rejected config";
    EXPECT_TRUE(calls_in(r.dir / "a.txt").empty());
  }
}

// ---- predict_with -------------------------------------------------------------------------------------

const std::string kEma = "[[callback]]\nplugin = \"ema\"\ndecay = 0.9\n";

std::vector<std::string> predict_sets(const std::string& predict_with, bool apply_at_end) {
  return with(kOneRound, {"run.epochs=2", "self_training.teacher_epochs=3", "self_training.predict_with=" + predict_with,
                          std::string("callback[0].apply_at_end=") + (apply_at_end ? "true" : "false")});
}

TEST(SelfTrainingRecipe, PredictWithEmaLabelsWithTheTeachersAverageAndLiveWithoutIt) {
  Recipe r(kEma);
  const CommandResult ema = r.run_to_end("ema", predict_sets("ema", false));
  ASSERT_EQ(ema.exit_code, 0) << ema.output;
  const CommandResult applied = r.run_to_end("applied", predict_sets("teacher", true));
  ASSERT_EQ(applied.exit_code, 0) << applied.output;
  const CommandResult live = r.run_to_end("live", predict_sets("live", false));
  ASSERT_EQ(live.exit_code, 0) << live.output;
  const fs::path e = r.run_dir("ema"), a = r.run_dir("applied"), l = r.run_dir("live");

  // The teacher's stage kept both weights; its result is the live one unless apply_at_end copied the average in.
  for (const fs::path& dir : {e, a, l}) {
    EXPECT_TRUE(fs::exists(dir / "stages/teacher.averaged.pt")) << dir;
    EXPECT_TRUE(fs::exists(dir / "stages/teacher.live.pt")) << dir;
  }
  expect_same_weights(e / "stages/teacher.pt", e / "stages/teacher.live.pt");
  expect_same_weights(a / "stages/teacher.pt", a / "stages/teacher.averaged.pt");
  expect_same_weights(e / "stages/teacher.averaged.pt", a / "stages/teacher.averaged.pt");  // the same training
  expect_different_weights(e / "stages/teacher.live.pt", e / "stages/teacher.averaged.pt");
  // The model that labelled the pool (saved as models/round1/teacher.pt).
  expect_same_weights(e / "models/round1/teacher.pt", e / "stages/teacher.averaged.pt");
  expect_same_weights(l / "models/round1/teacher.pt", l / "stages/teacher.live.pt");

  // predict_with = "ema" without applying the average labels exactly as the applied average does.
  for (const char* f : {"index.npy", "label.npy", "confidence.npy", "copies.npy", "confusion.npy"})
    EXPECT_EQ(read_file(e / "pseudo_labels_round1" / f), read_file(a / "pseudo_labels_round1" / f)) << f;
  auto je = nlohmann::json::parse(read_file(e / "pseudo_labels_round1.json"));
  auto ja = nlohmann::json::parse(read_file(a / "pseudo_labels_round1.json"));
  EXPECT_EQ(je["predicted_with"], "ema");
  EXPECT_EQ(ja["predicted_with"], "teacher");
  EXPECT_EQ(je["teacher"]["sha256"], ja["teacher"]["sha256"]);
  je.erase("predicted_with");
  ja.erase("predicted_with");
  EXPECT_EQ(je, ja);
  // ... while the round-0 teacher itself differed (live weights vs the average).
  EXPECT_NE(round_records(e).at(0)["val_loss"], round_records(a).at(0)["val_loss"]);

  // The live weights give other confidences.
  EXPECT_NE(read_file(l / "pseudo_labels_round1/confidence.npy"), read_file(e / "pseudo_labels_round1/confidence.npy"));
  EXPECT_EQ(nlohmann::json::parse(read_file(l / "pseudo_labels_round1.json"))["predicted_with"], "live");
}

const std::string kPredictWithEmaNeeds =
    "predict_with = \"ema\" needs the ema callback ([[callback]] plugin = \"ema\") with evaluate = true, but stage "
    "'teacher' kept no averaged weights: the run has no ema callback, or its evaluate = false";

TEST(SelfTrainingRecipe, PredictWithEmaWithoutTheEmaCallbackIsAClearError) {
  Recipe r;
  const CommandResult c = r.run_to_end("out", with(kOneRound, {"run.epochs=1", "self_training.predict_with=ema"}));
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find(kPredictWithEmaNeeds), std::string::npos) << c.output;
  EXPECT_FALSE(fs::exists(r.run_dir("out") / "pseudo_labels_round1")) << "nothing was labelled";
}

TEST(SelfTrainingRecipe, PredictWithEmaNeedsTheEmaCallbackToEvaluate) {
  // evaluate = false: the callback averages, but the host keeps averaged weights only of a callback that
  // evaluates them, so there are none to label with; the error names that setting and both fixes.
  Recipe r(kEma + "evaluate = false\n");
  const CommandResult c = r.run_to_end("out", with(kOneRound, {"run.epochs=1", "self_training.predict_with=ema"}));
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find(kPredictWithEmaNeeds), std::string::npos) << c.output;
  EXPECT_NE(c.output.find("Add the callback or set its evaluate = true (the default); or set predict_with = "
                          "\"teacher\", which labels with the average when the callback has apply_at_end = true"),
            std::string::npos)
      << c.output;
  EXPECT_EQ(c.output.find("needs the ema callback ([[callback]] plugin = \"ema\"), but"), std::string::npos)
      << "the old message, which told a run that has the callback to add it:\n" << c.output;
  EXPECT_TRUE(fs::exists(r.run_dir("out") / "stages/teacher.pt"));
  EXPECT_FALSE(fs::exists(r.run_dir("out") / "stages/teacher.averaged.pt")) << "no averaged weights were kept";
  EXPECT_FALSE(fs::exists(r.run_dir("out") / "pseudo_labels_round1")) << "nothing was labelled";
}

// ---- resume of a curriculum run ------------------------------------------------------------------------

TEST(SelfTrainingRecipe, CurriculumRunStoppedInRoundTwoResumesToTheSameResult) {
  const std::vector<std::string> sets = {
      "run.epochs=2", "dataset.samples=4096", "dataset.labeled_fraction=0.1", "loader.batch_size=16",
      "self_training.plugin=pseudo-label", "self_training.rounds=2", "self_training.selection=curriculum",
      "self_training.percentiles=[50, 100]", "self_training.finetune_epochs=1"};
  Recipe r;
  const CommandResult full = r.run_to_end("a", sets);
  ASSERT_EQ(full.exit_code, 0) << full.output;

  bool stopped = false;
  const fs::path runs = r.dir / "b" / "synthetic";
  const int code = run_and_stop_when(r.args("b", sets), [&] { return some_run_has(runs, "pseudo_labels_round2.json"); },
                                     std::chrono::milliseconds(0), &stopped);
  ASSERT_TRUE(stopped) << "round 2 never started";
  ASSERT_EQ(code, 143) << "expected the SIGTERM-stopped run to exit 143 (it may have finished before the signal)";
  const fs::path interrupted = r.run_dir("b");
  ASSERT_FALSE(fs::exists(interrupted / "model.pt"));

  const CommandResult resumed = loom("run --resume " + interrupted.string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming stage 'round2/student'"), std::string::npos) << resumed.output;
  EXPECT_EQ(resumed.output.find("differ from those the interrupted run recorded"), std::string::npos) << resumed.output;

  const fs::path reference = r.run_dir("a");
  expect_same_weights(reference / "model.pt", interrupted / "model.pt");
  for (const char* f : {"pseudo_labels_round1/index.npy", "pseudo_labels_round1/label.npy",
                        "pseudo_labels_round1/confidence.npy", "pseudo_labels_round1/confusion.npy",
                        "pseudo_labels_round2/index.npy", "pseudo_labels_round2/label.npy",
                        "pseudo_labels_round2/confidence.npy", "pseudo_labels_round2/confusion.npy",
                        "pseudo_labels_round1.json", "pseudo_labels_round2.json"}) {
    ASSERT_TRUE(fs::exists(reference / f)) << f;
    EXPECT_EQ(read_file(reference / f), read_file(interrupted / f)) << f;
  }

  // The curriculum itself: round 1 keeps ceil(50 % of each class), round 2 all of the pool.
  const auto j1 = nlohmann::json::parse(read_file(reference / "pseudo_labels_round1.json"));
  const auto j2 = nlohmann::json::parse(read_file(reference / "pseudo_labels_round2.json"));
  EXPECT_EQ(j1["selection"]["rule"], "curriculum");
  EXPECT_EQ(j1["selection"]["percentile"], 50.0);
  EXPECT_EQ(j2["selection"]["percentile"], 100.0);
  const auto candidates = j1["candidates_per_class"].get<std::vector<int64_t>>();
  const auto selected = j1["selected_per_class"].get<std::vector<int64_t>>();
  ASSERT_EQ(candidates.size(), 4u);
  for (size_t c = 0; c < 4; ++c) EXPECT_EQ(selected[c], (candidates[c] + 1) / 2) << "class " << c;
  EXPECT_EQ(j2["selected"], j2["pool"]["size"]);
  // confusion.npy: hidden label by pseudo label, summing to the selection; its diagonal the accuracy.
  const auto npy = read_npy_dir(reference / "pseudo_labels_round2");
  EXPECT_EQ(npy["confusion"]["dtype"], "int64");
  EXPECT_EQ(npy["confusion"]["shape"], nlohmann::json::array({4, 4}));
  const auto confusion = npy["confusion"]["values"].get<std::vector<std::vector<int64_t>>>();
  int64_t total = 0, diagonal = 0;
  for (size_t i = 0; i < 4; ++i)
    for (size_t k = 0; k < 4; ++k) total += confusion[i][k], diagonal += i == k ? confusion[i][k] : 0;
  EXPECT_EQ(total, j2["selected"].get<int64_t>());

  // Each round reported once, with the same numbers, per-class pseudo-label accuracy included.
  const auto ra = round_records(reference), rb = round_records(interrupted);
  ASSERT_EQ(ra.size(), 3u);
  ASSERT_EQ(rb.size(), 3u);
  for (size_t i = 0; i < ra.size(); ++i) {
    SCOPED_TRACE("round " + std::to_string(i));
    nlohmann::json a = ra[i], b = rb[i];
    for (auto* rec : {&a, &b})
      for (const char* volatile_key : {"time", "timestamp", "wall_seconds", "elapsed_seconds"}) rec->erase(volatile_key);
    for (const auto& [key, value] : a.items())
      if (key.rfind("pseudo_label_accuracy", 0) == 0 || key.rfind("selected", 0) == 0 || key.find("_accuracy") != std::string::npos ||
          key.find("_loss") != std::string::npos || key.find("entries") != std::string::npos)
        EXPECT_EQ(value, b[key]) << key;
  }
  EXPECT_DOUBLE_EQ(ra[2]["pseudo_label_accuracy"].get<double>(),
                   static_cast<double>(diagonal) / static_cast<double>(total));
  for (int c = 0; c < 4; ++c) {
    const std::string key = "pseudo_label_accuracy/" + std::to_string(c);
    ASSERT_TRUE(ra[2].contains(key)) << ra[2].dump();
    int64_t given = 0;
    for (size_t i = 0; i < 4; ++i) given += confusion[i][static_cast<size_t>(c)];
    EXPECT_DOUBLE_EQ(ra[2][key].get<double>(),
                     static_cast<double>(confusion[static_cast<size_t>(c)][static_cast<size_t>(c)]) / given);
    EXPECT_DOUBLE_EQ(j2["pseudo_label_accuracy_per_class"][static_cast<size_t>(c)].get<double>(),
                     ra[2][key].get<double>());
  }
}

TEST(SelfTrainingRecipe, CurriculumNeedsAPercentilePerRound) {
  Recipe r;
  const CommandResult c = r.run_to_end(
      "out", with(kOneRound, {"self_training.selection=curriculum", "self_training.rounds=3",
                              "self_training.percentiles=[50, 100]"}));
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("selection = \"curriculum\" with rounds = 3 needs a percentile per round, but percentiles "
                          "has 2 entries"),
            std::string::npos)
      << c.output;
  const fs::path run_dir = r.run_dir("out");
  EXPECT_TRUE(run_dir.empty() || !fs::exists(run_dir / "stages")) << "nothing was trained";
}

// ---- [student_model] ----------------------------------------------------------------------------------

TEST(SelfTrainingRecipe, AStudentModelWiderThanTheTeacher) {
  Recipe r("[student_model]\nhidden = [64]\n");
  const CommandResult c = r.run_to_end("out", with(kOneRound, {"run.epochs=2", "model.hidden=[32]",
                                                               "self_training.finetune_epochs=1"}));
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const fs::path run_dir = r.run_dir("out");
  const auto teacher = load_weights(run_dir / "stages/teacher.pt");
  const auto student = load_weights(run_dir / "stages/round1/student.pt");
  const auto finetuned = load_weights(run_dir / "stages/round1/finetune.pt");
  const auto final_model = load_weights(run_dir / "model.pt");
  ASSERT_EQ(teacher.size(), student.size());
  // The first layer's weight is [hidden, inputs]: 32 rows for the teacher, 64 for the student.
  int64_t compared = 0;
  for (const auto& [name, t] : teacher) {
    if (t.dim() != 2 || t.size(0) != 32) continue;
    ASSERT_TRUE(student.count(name)) << name;
    EXPECT_EQ(student.at(name).size(0), 64) << name;
    EXPECT_EQ(student.at(name).size(1), t.size(1)) << name;
    EXPECT_EQ(finetuned.at(name).size(0), 64) << name;
    EXPECT_EQ(final_model.at(name).size(0), 64) << name << ": the last student is the final model";
    ++compared;
  }
  EXPECT_EQ(compared, 1) << "one hidden layer of 32 in the teacher";
  const auto rounds = round_records(run_dir);
  ASSERT_EQ(rounds.size(), 2u);
  EXPECT_GT(rounds[1]["test_accuracy"].get<double>(), 0.5) << "the student trained";
  const std::string resolved = read_file(run_dir / "config.resolved.toml");
  EXPECT_NE(resolved.find("[student_model]"), std::string::npos) << resolved;
}

TEST(SelfTrainingRecipe, StudentInitTeacherNeedsTheTeachersArchitecture) {
  Recipe r("[student_model]\nhidden = [64]\n");
  const CommandResult c = r.run_to_end(
      "out", with(kOneRound, {"run.epochs=1", "model.hidden=[32]", "self_training.student_init=teacher"}));
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("student_init = \"teacher\" needs a student of the teacher's architecture"), std::string::npos)
      << c.output;
  EXPECT_NE(c.output.find("Use student_init = \"fresh\""), std::string::npos) << c.output;
  EXPECT_FALSE(fs::exists(r.run_dir("out") / "stages/round1/student.pt"));
}

/// "<file>:<line>:<col>" of `needle`, which must occur exactly once in `file`: where an error about it points.
std::string position_of(const fs::path& file, const std::string& needle) {
  const std::string text = read_file(file);
  const size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  EXPECT_EQ(at, text.rfind(needle)) << "'" << needle << "' occurs more than once in " << file;
  if (at == std::string::npos) return "";
  const size_t line_start = text.rfind('\n', at) == std::string::npos ? 0 : text.rfind('\n', at) + 1;
  const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
  return file.string() + ":" + std::to_string(line) + ":" + std::to_string(at - line_start + 1);
}

size_t occurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(SelfTrainingRecipe, AnUnknownStudentModelKeyNamesItsPlace) {
  Recipe r("[student_model]\nhidden = [64]\nhiden = [16]\n");
  const CommandResult c = r.run_to_end("out", kOneRound);
  EXPECT_EQ(c.exit_code, 2) << c.output;  // a rejected config
  const std::string where = position_of(r.config(), "hiden =") + ": error: unknown key 'hiden' in [student_model]";
  EXPECT_NE(c.output.find(where), std::string::npos) << "expected '" << where << "' in:\n" << c.output;
  EXPECT_NE(c.output.find("did you mean 'hidden'?"), std::string::npos) << c.output;
  EXPECT_FALSE(fs::exists(r.dir / "out")) << "a config error creates no run directory";
}

TEST(SelfTrainingRecipe, AStudentModelValueErrorNamesItsPlace) {
  Recipe r("[student_model]\nhidden = \"wide\"\n");
  const std::string where = position_of(r.config(), "\"wide\"") +
                            ": error: 'hidden' in [student_model] (plugin 'mlp', over [model]) must be an array of "
                            "integers, found string \"wide\"";
  const CommandResult check = loom("check " + r.config().string());
  EXPECT_EQ(check.exit_code, 2) << check.output;
  EXPECT_NE(check.output.find(where), std::string::npos) << "expected '" << where << "' in:\n" << check.output;
  EXPECT_EQ(occurrences(check.output, "'hidden' in ["), 1u) << check.output;
  const CommandResult c = r.run_to_end("out", kOneRound);
  EXPECT_EQ(c.exit_code, 2) << c.output;
  EXPECT_NE(c.output.find(where), std::string::npos) << "expected '" << where << "' in:\n" << c.output;
  EXPECT_FALSE(fs::exists(r.dir / "out")) << "a config error creates no run directory";
}

TEST(SelfTrainingRecipe, ABadModelValueIsReportedOnceBesideAStudentModel) {
  Recipe r("[student_model]\nhidden = [128]\n");
  std::string text = read_file(r.config());
  text.replace(text.find("dropout = 0.1"), 13, "dropout = 2.5");
  write_file(r.config(), text);
  const CommandResult check = loom("check " + r.config().string());
  EXPECT_EQ(check.exit_code, 2) << check.output;
  const std::string where = position_of(r.config(), "2.5") +
                            ": error: 'dropout' in [model] (plugin 'mlp') is 2.5, out of range: expected between 0 "
                            "and 0.9";
  EXPECT_NE(check.output.find(where), std::string::npos) << "expected '" << where << "' in:\n" << check.output;
  EXPECT_EQ(occurrences(check.output, "'dropout' in ["), 1u) << "reported once, in [model] only:\n" << check.output;
  EXPECT_EQ(occurrences(check.output, ": error: "), 1u) << check.output;
}

// ---- [run] val_every ----------------------------------------------------------------------------------

TEST(SelfTrainingRecipe, ValEveryValidatesEveryNthEpochAndEachStagesLast) {
  Recipe r;
  write_file(r.config(), read_file(r.config()) + "[[callback]]\nplugin = \"recording\"\nfile = \"" +
                             (r.dir / "events.txt").string() + "\"\n");
  const CommandResult c = r.run_to_end(
      "out",
      with(kOneRound, {"run.epochs=4", "run.val_every=3", "self_training.teacher_epochs=7",
                       "self_training.finetune_epochs=2"}),
      kRecordingCallbackDir);
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const auto stages = epochs_by_stage(r.run_dir("out"));
  const std::map<std::string, std::set<int64_t>> expected = {
      {"teacher", {3, 6, 7}}, {"round1/student", {3, 4}}, {"round1/finetune", {2}}};
  const std::map<std::string, size_t> epochs = {{"teacher", 7}, {"round1/student", 4}, {"round1/finetune", 2}};
  for (const auto& [stage, validated] : expected) {
    SCOPED_TRACE(stage);
    ASSERT_EQ(stages.at(stage).size(), epochs.at(stage));
    for (const auto& e : stages.at(stage)) {
      const int64_t epoch = e["epoch"].get<int64_t>();
      if (validated.count(epoch)) {
        EXPECT_TRUE(e["val_accuracy"].is_number()) << e.dump();
        EXPECT_TRUE(e["val_loss"].is_number()) << e.dump();
      } else {
        EXPECT_TRUE(!e.contains("val_accuracy") || e["val_accuracy"].is_null()) << e.dump();
        EXPECT_TRUE(!e.contains("val_loss") || e["val_loss"].is_null()) << e.dump();
      }
    }
  }
  // on_validation_end fired only with the validations.
  std::map<std::string, std::set<int64_t>> fired;
  for (const auto& line : lines_of(r.dir / "events.txt")) {
    std::istringstream in(line);
    std::string hook, stage;
    int64_t epoch = 0;
    in >> hook >> stage >> epoch;
    if (hook == "validation") {
      EXPECT_TRUE(fired[stage].insert(epoch).second) << "twice: " << line;
    }
  }
  EXPECT_EQ(fired, expected);
}

// ---- TensorBoard: round curves --------------------------------------------------------------------------

nlohmann::json read_tensorboard(const fs::path& dir) {
  const CommandResult py =
      run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR "/tests/python/read_tensorboard.py " + dir.string());
  EXPECT_EQ(py.exit_code, 0) << py.output;
  // TensorBoard may log to stderr first (no TensorFlow installed); the JSON is the last line.
  const size_t start = py.output.rfind("\n{");
  return nlohmann::json::parse(start == std::string::npos ? py.output : py.output.substr(start + 1))["scalars"];
}

TEST(SelfTrainingRecipe, TensorBoardTagsRoundRecordsAsRoundCurves) {
  Recipe r("[[metric_sink]]\nplugin = \"tensorboard\"\n");
  const CommandResult c =
      r.run_to_end("out", with(kOneRound, {"run.epochs=1", "self_training.rounds=2", "self_training.finetune_epochs=1"}));
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const fs::path run_dir = r.run_dir("out");
  const auto scalars = read_tensorboard(run_dir / "tensorboard");
  const auto rounds = round_records(run_dir);
  ASSERT_EQ(rounds.size(), 3u);

  ASSERT_TRUE(scalars.contains("round/test_accuracy")) << scalars.dump();
  const auto curve = scalars["round/test_accuracy"];
  ASSERT_EQ(curve.size(), 3u) << curve.dump();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(curve[i][0], static_cast<int64_t>(i));
    EXPECT_EQ(curve[i][1].get<double>(), static_cast<double>(static_cast<float>(rounds[i]["test_accuracy"].get<double>())));
  }
  ASSERT_TRUE(scalars.contains("round/selected_total")) << scalars.dump();
  const auto selected = scalars["round/selected_total"];
  ASSERT_EQ(selected.size(), 2u);
  EXPECT_EQ(selected[0][0], 1);
  EXPECT_EQ(selected[1][0], 2);
  EXPECT_EQ(selected[1][1].get<double>(), rounds[2]["selected_total"].get<double>());
  // Round records appear only under round/, never under their stage's name (one point per curve).
  for (const auto& [tag, points] : scalars.items())
    for (const char* key : {"selected_total", "pseudo_label_accuracy", "mean_confidence", "teacher_pool_accuracy"})
      if (tag.find(key) != std::string::npos) EXPECT_EQ(tag.rfind("round/", 0), 0u) << tag;
}

// ---- the quick self-training experiment -----------------------------------------------------------------

TEST(SslExperiment, QuickRunProducesConsistentRows) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (scripts/setup.sh installs dataset-fashion-mnist)";
  TempDir out;
  const CommandResult c = run("env LOOM=" LOOM_TEST_BIN " SEEDS='0 1' bash " LOOM_TEST_SOURCE_DIR
                              "/scripts/ssl-experiment.sh --quick " + out.path().string());
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const auto table = nlohmann::json::parse(read_file(out / "table.json"));
  std::map<std::string, nlohmann::json> rows;
  for (const auto& row : table["rows"]) rows[row["key"].get<std::string>()] = row;
  std::set<std::string> keys;
  for (const auto& [key, row] : rows) keys.insert(key);
  // Six rows, three levers on the best of them (by validation accuracy), and supervised only.
  const std::string base = [&] {
    for (const auto& [key, row] : rows)
      if (key.find('+') != std::string::npos) return key.substr(0, key.find('+'));
    return std::string();
  }();
  ASSERT_FALSE(base.empty()) << "no lever row";
  EXPECT_EQ(keys, (std::set<std::string>{"curriculum-strong", "curriculum-weak", "topk-strong", "topk-weak",
                                         "threshold-strong", "threshold-weak", "supervised", base + "+teacher-init",
                                         base + "+share-50", base + "+wide-student"}));
  ASSERT_EQ(table["rows"].size(), 10u);
  ASSERT_TRUE(rows.count("supervised"));
  const std::string best = table["best_row"].get<std::string>();
  ASSERT_TRUE(rows.count(best)) << best;
  EXPECT_NE(best, "supervised");
  EXPECT_EQ(rows["supervised"]["seeds"], nlohmann::json::array({0, 1}));
  EXPECT_EQ(rows[best]["seeds"], nlohmann::json::array({0, 1})) << "the best row is the one repeated with seed 1";

  const int64_t supervised_steps = rows["supervised"]["optimizer_steps_total"].get<int64_t>();
  for (const auto& [key, row] : rows) {
    SCOPED_TRACE(key);
    const auto tests = row["test_accuracy"].get<std::vector<double>>();
    ASSERT_EQ(tests.size(), row["seeds"].size());
    ASSERT_FALSE(tests.empty());
    for (double t : tests) EXPECT_TRUE(t > 0.0 && t <= 1.0) << t;
    const double mean = std::accumulate(tests.begin(), tests.end(), 0.0) / static_cast<double>(tests.size());
    EXPECT_NEAR(row["mean"].get<double>(), mean, 1e-12);
    if (key != best && key != "supervised") EXPECT_EQ(row["seeds"], nlohmann::json::array({0}));
    EXPECT_GE(supervised_steps, row["longest_stage_steps"].get<int64_t>())
        << "supervised only trains at least as many steps as the longest stage";
    if (key == "supervised") {
      EXPECT_TRUE(row["rounds"].empty());
      continue;
    }
    if (key.rfind("curriculum", 0) == 0 && key.find('+') == std::string::npos) {
      const auto& rd = row["rounds"];
      ASSERT_EQ(rd.size(), 3u) << rd.dump();
      for (size_t i = 0; i < 3; ++i) EXPECT_EQ(rd[i]["round"], static_cast<int64_t>(i));
      EXPECT_EQ(rd[1]["percentile"], 50.0);
      EXPECT_EQ(rd[2]["percentile"], 100.0);
      EXPECT_EQ(rd[2]["pseudo_label_accuracy_per_class"].size(), 10u);
    } else if (key.rfind("curriculum", 0) != 0) {
      EXPECT_EQ(row["rounds"].size(), 2u) << "one round in quick mode";
    }
  }
  EXPECT_NEAR(table["gain_points"].get<double>(),
              100.0 * (rows[best]["mean"].get<double>() - rows["supervised"]["mean"].get<double>()), 1e-9);
  EXPECT_TRUE(fs::exists(out / "table.md"));
}

}  // namespace
}  // namespace loom::test
