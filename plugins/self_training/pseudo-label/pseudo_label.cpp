#include "pseudo_label.h"

#include "provenance.h"
#include "student_data.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace loom::pseudo_label {
namespace fs = std::filesystem;

namespace {

std::string round_name(int64_t round) { return "round" + std::to_string(round); }

/// The student_init = "teacher" start: the teacher's parameters and buffers (BatchNorm statistics) copied
/// into a freshly created model of the same architecture.
void copy_weights(const Model& from, Model& to) {
  torch::NoGradGuard no_grad;
  auto copy = [](const auto& source, auto target, const char* what) {
    for (auto& item : target) {
      const at::Tensor* value = source.find(item.key());
      if (!value || !value->sizes().equals(item.value().sizes()))
        throw std::invalid_argument(std::string("pseudo-label: student_init = \"teacher\" needs a student of the "
                                                "teacher's architecture, but the student's ") +
                                    what + " '" + item.key() +
                                    (value ? "' has another shape than the teacher's" : "' is not in the teacher") +
                                    " ([student_model] changes it). Use student_init = \"fresh\", or drop those "
                                    "keys from [student_model]");
      item.value().copy_(*value);
    }
  };
  copy(from.named_parameters(), to.named_parameters(), "parameter");
  copy(from.named_buffers(), to.named_buffers(), "buffer");
}

/// Hidden label (row) by pseudo label (column), over the samples whose hidden label is known (>= 0);
/// undefined when none is.
at::Tensor confusion_matrix(const at::Tensor& pseudo, const at::Tensor& truth, int64_t classes) {
  const at::Tensor known = truth.ge(0);
  if (known.sum().item<int64_t>() == 0) return {};
  const at::Tensor cell = truth.masked_select(known) * classes + pseudo.masked_select(known);
  return at::bincount(cell, {}, classes * classes).to(at::kLong).reshape({classes, classes});
}

double masked_accuracy(const at::Tensor& predicted, const at::Tensor& truth) {
  const at::Tensor known = truth.ge(0);
  const int64_t n = known.sum().item<int64_t>();
  if (n == 0) return -1.0;
  return predicted.masked_select(known).eq(truth.masked_select(known)).sum().item<double>() / static_cast<double>(n);
}

}  // namespace

FeatureInfo PseudoLabel::info() {
  return {
      .name = "pseudo-label",
      .version = "1.0.0",
      .summary = "self-training rounds: teacher predicts the unlabeled split, a (noisy) student trains on its "
                 "selected pseudo labels and becomes the next teacher",
      .params = {
          ParamSpec::integer("rounds", 1).range(1, 100)
              .doc("teacher → student rounds after the supervised teacher (round 0)"),
          ParamSpec::integer("teacher_epochs", 0).at_least(0)
              .doc("epochs of the round-0 teacher on the labeled split; 0 = [run] epochs"),
          ParamSpec::integer("student_epochs", 0).at_least(0)
              .doc("epochs of each student on labeled + pseudo-labeled samples; 0 = [run] epochs"),
          ParamSpec::integer("finetune_epochs", 0).at_least(0)
              .doc("epochs fine-tuning each student on the labeled split alone; 0 = no fine-tuning"),
          ParamSpec::choice("selection", "top-k-per-class", {"threshold", "top-k-per-class", "curriculum"})
              .doc("threshold: every sample with confidence >= threshold; top-k-per-class: the k most confident "
                   "samples of each predicted class; curriculum: round r keeps the percentiles[r-1] % most confident "
                   "of each predicted class (Curriculum Labeling)"),
          ParamSpec::float_list("percentiles", {20.0, 40.0, 60.0, 80.0, 100.0})
              .doc("selection = curriculum: the share (0, 100] of each class's candidates kept in round 1, 2, …; "
                   "one entry per round at least"),
          ParamSpec::boolean("per_class", true)
              .doc("selection = curriculum: the percentile of each predicted class (true) or of the whole pool"),
          ParamSpec::real("threshold", 0.95).range(0.0, 1.0)
              .doc("selection = threshold: the minimum teacher confidence (its highest class probability)"),
          ParamSpec::integer("k", 500).at_least(1)
              .doc("selection = top-k-per-class: samples per predicted class (a class with fewer candidates keeps "
                   "them all, and is reported)"),
          ParamSpec::integer("pool_size", 0).at_least(0)
              .doc("label a fixed random subset of this many unlabeled samples (the same in every round); 0 = the "
                   "whole unlabeled split"),
          ParamSpec::real("max_fraction", 1.0).range(0.001, 1.0)
              .doc("select at most this fraction of the unlabeled pool, the most confident first; 1 = no cap"),
          ParamSpec::boolean("balance", false).doc("equalise the classes' selected counts (see balance_mode)"),
          ParamSpec::choice("balance_mode", "cap", {"cap", "duplicate"})
              .doc("balance = true: cap cuts every class to the smallest non-empty class's count; duplicate "
                   "repeats the smaller classes' samples up to the largest class's count"),
          ParamSpec::choice("labels", "hard", {"hard", "soft"})
              .doc("hard: the teacher's most likely class; soft: its probabilities, sharpened by temperature"),
          ParamSpec::real("temperature", 1.0).range(0.01, 100.0)
              .doc("labels = soft: targets softmax(log p / T), i.e. softmax(logits / T); < 1 sharpens"),
          ParamSpec::real("pseudo_weight", 1.0).range(0.0, 100.0)
              .doc("loss weight of each pseudo-labeled sample (labeled samples weigh 1)"),
          ParamSpec::real("labeled_share", 0.0).range(0.0, 0.99)
              .doc("fraction of the student's samples (so of each batch, on average) drawn from the labeled split "
                   "by repeating it; 0 = each labeled sample once"),
          ParamSpec::choice("student_init", "fresh", {"fresh", "teacher"})
              .doc("fresh: a newly initialised model; teacher: starts from the teacher's weights"),
          ParamSpec::boolean("noise", true)
              .doc("students (and fine-tuning) train with student_augmentation and the model's dropout; false: "
                   "neither. The teacher always predicts clean (eval mode, no augmentation)"),
          ParamSpec::string("teacher_augmentation", "default").pipeline_name()
              .doc("the augmentation pipeline the round-0 teacher trains with ([[augmentation]] tables' pipeline)"),
          ParamSpec::string("student_augmentation", "default").pipeline_name()
              .doc("the pipeline students train with, on pseudo-labeled and labeled samples alike (e.g. \"strong\": "
                   "RandAugment + random erasing, as Noisy Student does)"),
          ParamSpec::choice("predict_with", "teacher", {"teacher", "ema", "live"})
              .doc("the weights that label the pool: teacher = the teacher's stage result (the EMA average when the "
                   "ema callback applies it at the end); ema = the EMA weights (needs the ema callback with "
                   "evaluate = true); live = the weights training left, before any averaging"),
      },
  };
}

Options::Options(const Params& p)
    : rounds(p.integer("rounds")),
      pool_size(p.integer("pool_size")),
      teacher_epochs(p.integer("teacher_epochs")),
      student_epochs(p.integer("student_epochs")),
      finetune_epochs(p.integer("finetune_epochs")),
      soft(p.str("labels") == "soft"),
      temperature(p.real("temperature")),
      pseudo_weight(p.real("pseudo_weight")),
      labeled_share(p.real("labeled_share")),
      init_from_teacher(p.str("student_init") == "teacher"),
      noise(p.boolean("noise")),
      percentiles(p.get<std::vector<double>>("percentiles")),
      teacher_augmentation(p.str("teacher_augmentation")),
      student_augmentation(p.str("student_augmentation")),
      predict_with(p.str("predict_with") == "ema"    ? PredictWith::Ema
                   : p.str("predict_with") == "live" ? PredictWith::Live
                                                     : PredictWith::Teacher) {
  const std::string rule = p.str("selection");
  selection.rule = rule == "threshold" ? Rule::Threshold : rule == "curriculum" ? Rule::Curriculum : Rule::TopKPerClass;
  selection.per_class = p.boolean("per_class");
  if (selection.rule == Rule::Curriculum) {
    for (double q : percentiles)
      if (!(q > 0.0 && q <= 100.0))
        throw std::invalid_argument("pseudo-label: every entry of percentiles must be in (0, 100], got " +
                                    std::to_string(q));
    if (static_cast<int64_t>(percentiles.size()) < rounds)
      throw std::invalid_argument("pseudo-label: selection = \"curriculum\" with rounds = " + std::to_string(rounds) +
                                  " needs a percentile per round, but percentiles has " +
                                  std::to_string(percentiles.size()) + " entries; add entries (e.g. [20, 40, 60, 80, "
                                  "100] for 5 rounds) or lower rounds");
  }
  selection.threshold = p.real("threshold");
  selection.k = p.integer("k");
  selection.max_fraction = p.real("max_fraction");
  selection.balance = !p.boolean("balance") ? Balance::None
                      : p.str("balance_mode") == "cap" ? Balance::Cap
                                                       : Balance::Duplicate;
}

nlohmann::json Options::describe() const {
  nlohmann::json j;
  j["rule"] = to_string(selection.rule);
  if (selection.rule == Rule::Threshold) {
    j["threshold"] = selection.threshold;
  } else if (selection.rule == Rule::Curriculum) {
    j["percentiles"] = percentiles;
    j["per_class"] = selection.per_class;
  } else {
    j["k"] = selection.k;
  }
  j["max_fraction"] = selection.max_fraction;
  j["balance"] = to_string(selection.balance);
  j["labels"] = soft ? "soft" : "hard";
  if (soft) j["temperature"] = temperature;
  j["pseudo_weight"] = pseudo_weight;
  j["labeled_share"] = labeled_share;
  return j;
}

PseudoLabel::PseudoLabel(const CreateContext& ctx) : options_(ctx.params), run_(ctx.run) {}

std::shared_ptr<Model> PseudoLabel::run(TrainerServices& services) {
  const Dataset& data = services.dataset();
  const SampleSpec spec = data.spec();
  class_names_.clear();
  for (int64_t c = 0; c < spec.num_classes; ++c)
    class_names_.push_back(static_cast<int64_t>(spec.class_names.size()) == spec.num_classes
                               ? spec.class_names[static_cast<size_t>(c)]
                               : std::to_string(c));

  const View labeled = services.split(Split::Labeled);
  View pool = services.split(Split::Unlabeled);
  require_disjoint({{"labeled", labeled.indices},
                    {"unlabeled", pool.indices},
                    {"validation", services.split(Split::Val).indices},
                    {"test", services.split(Split::Test).indices}});
  if (pool.indices.numel() == 0)
    throw std::invalid_argument("the dataset's unlabeled split is empty: there is nothing to pseudo-label. Leave part "
                                "of the training set unlabeled (e.g. [dataset] labeled_per_class or labeled_fraction "
                                "< 1), or use [self_training] plugin = \"none\"");
  if (options_.pool_size > 0 && options_.pool_size < pool.indices.size(0)) {
    // A fixed random subset, ascending like the split itself: drawn once, so every round labels the same.
    at::Generator generator = run_.generator("pseudo-label/pool");
    const at::Tensor order = at::randperm(pool.indices.size(0), generator, at::TensorOptions().dtype(at::kLong));
    pool.indices = std::get<0>(pool.indices.index_select(0, order.slice(0, 0, options_.pool_size)).sort());
    run_.logger().info("pseudo-label: labelling a random " + std::to_string(options_.pool_size) + " of the " +
                       std::to_string(order.size(0)) + " unlabeled samples (pool_size)");
  }
  const at::Tensor labeled_labels = data.labels().to(at::kLong).index_select(0, labeled.indices);
  // Pipeline names are checked before anything trains: a typo must not cost a teacher's training.
  const std::vector<std::string> pipelines = services.augmentation_pipelines();
  for (const auto& [key, name] : {std::pair<std::string, std::string>{"teacher_augmentation", options_.teacher_augmentation},
                                  {"student_augmentation", options_.student_augmentation}}) {
    if (std::find(pipelines.begin(), pipelines.end(), name) != pipelines.end()) continue;
    std::string list;
    for (const auto& n : pipelines) list += (list.empty() ? "" : ", ") + n;
    throw std::invalid_argument("[self_training] " + key + " = \"" + name + "\" names no augmentation pipeline (the "
                                "run has: " + list + "); add [[augmentation]] tables with pipeline = \"" + name +
                                "\", or name one of those");
  }
  RoundLog log(run_.run_dir() / "pseudo_label_rounds.json");

  // Round 0: plain supervised training, the same whatever the other params say (`noise` concerns students
  // only), so every setting starts from the same teacher and round 0 is a supervised baseline.
  std::shared_ptr<Model> teacher = services.create_model();
  std::string teacher_stage = "teacher";
  services.train(*teacher, TrainRequest{.stage = teacher_stage, .round = 0, .epochs = options_.teacher_epochs,
                                        .data = labeled, .augmentation = options_.teacher_augmentation});
  finish_round(services, log, 0, teacher_stage, *teacher, RoundStats{});

  for (int64_t round = 1; round <= options_.rounds; ++round) {
    at::Tensor probabilities;
    double pool_accuracy = -1.0;
    const std::shared_ptr<Model> labeller = predictor(services, teacher, teacher_stage);
    const Selection selection =
        select_round(services, *labeller, round, teacher_stage, pool, &probabilities, &pool_accuracy);

    at::Generator generator = run_.generator("pseudo-label/" + round_name(round) + "/labeled-share");
    const StudentData student_data = build_student_data(
        labeled.indices, labeled_labels, selection, probabilities,
        StudentDataOptions{.soft = options_.soft, .temperature = options_.temperature,
                           .pseudo_weight = options_.pseudo_weight, .labeled_share = options_.labeled_share,
                           .augment = options_.noise},
        generator);
    // Every round creates its student, whatever student_init says: the host seeds the k-th created model
    // from (run seed, k), so model creation must happen in the same order in every setting and on resume.
    std::shared_ptr<Model> student = services.create_student_model();
    if (options_.init_from_teacher) copy_weights(*teacher, *student);
    std::string stage = round_name(round) + "/student";
    services.train(*student, TrainRequest{.stage = stage, .round = round, .epochs = options_.student_epochs,
                                          .data = student_data.view, .dropout = options_.noise,
                                          .augmentation = options_.student_augmentation});
    if (options_.finetune_epochs > 0) {
      View finetune = labeled;
      finetune.augment = options_.noise;
      stage = round_name(round) + "/finetune";
      services.train(*student, TrainRequest{.stage = stage, .round = round, .epochs = options_.finetune_epochs,
                                            .data = finetune, .dropout = options_.noise,
                                            .augmentation = options_.student_augmentation});
    }
    const at::Tensor hidden = data.labels().to(at::kLong).index_select(0, selection.indices);
    RoundStats stats{.selection = &selection,
                     .student = &student_data,
                     .hidden_labels = hidden,
                     .confusion = confusion_matrix(selection.labels, hidden, static_cast<int64_t>(class_names_.size())),
                     .pool_accuracy = pool_accuracy};
    finish_round(services, log, round, stage, *student, stats);
    teacher = std::move(student);
    teacher_stage = stage;
  }
  return teacher;
}

std::shared_ptr<Model> PseudoLabel::predictor(TrainerServices& services, const std::shared_ptr<Model>& teacher,
                                              const std::string& teacher_stage) const {
  if (options_.predict_with == Options::PredictWith::Teacher) return teacher;
  if (options_.predict_with == Options::PredictWith::Live) return services.stage_weights(teacher_stage, StageWeights::Live);
  std::shared_ptr<Model> averaged = services.stage_weights(teacher_stage, StageWeights::Averaged);
  // The host keeps a stage's averaged weights only where a callback evaluates them (eval_model): the ema
  // callback with evaluate = false averages, but hands nothing over.
  if (!averaged)
    throw std::invalid_argument(
        "[self_training] predict_with = \"ema\" needs the ema callback ([[callback]] plugin = \"ema\") with "
        "evaluate = true, but stage '" + teacher_stage + "' kept no averaged weights: the run has no ema callback, or "
        "its evaluate = false (only an average the callback evaluates is kept). Add the callback or set its evaluate = "
        "true (the default); or set predict_with = \"teacher\", which labels with the average when the callback has "
        "apply_at_end = true");
  return averaged;
}

Selection PseudoLabel::select_round(TrainerServices& services, Model& teacher, int64_t round,
                                    const std::string& teacher_stage, const View& pool, at::Tensor* probabilities,
                                    double* pool_accuracy) {
  const std::string name = round_name(round);
  const fs::path run_dir = run_.run_dir();
  const SavedModel saved = services.save_model(teacher, name + "/teacher");
  *probabilities = services.predict(teacher, pool);  // eval mode, no augmentation, the run's precision
  SelectionOptions rule = options_.selection;
  if (rule.rule == Rule::Curriculum) rule.percentile = options_.percentiles[static_cast<size_t>(round - 1)];
  const Selection s = select(pool.indices, *probabilities, rule);
  *pool_accuracy = masked_accuracy(probabilities->argmax(1),
                                   services.dataset().labels().to(at::kLong).index_select(0, pool.indices));

  // Provenance: the arrays first, then the JSON that names them (a reader finding the JSON finds the
  // arrays complete). A replayed round rewrites identical bytes, which write_array_dir checks.
  const std::string dir_name = "pseudo_labels_" + name;
  std::vector<std::pair<std::string, at::Tensor>> arrays = {{"index", s.indices}};
  if (options_.soft)
    arrays.emplace_back("probabilities", sharpen(probabilities->index_select(0, s.positions), options_.temperature));
  else
    arrays.emplace_back("label", s.labels);
  arrays.emplace_back("confidence", s.confidence);
  arrays.emplace_back("copies", s.copies);
  const at::Tensor confusion =
      confusion_matrix(s.labels, services.dataset().labels().to(at::kLong).index_select(0, s.indices),
                       static_cast<int64_t>(class_names_.size()));
  if (confusion.defined()) arrays.emplace_back("confusion", confusion);
  if (write_array_dir(run_dir / dir_name, arrays) == Written::Replaced)
    run_.logger().warn("pseudo-label: " + name + "'s pseudo labels differ from those the interrupted run recorded; "
                       "the replay was not deterministic (a different device, thread count or LibTorch?). "
                       "Kept the new ones, which the student trains on");

  nlohmann::json j;
  j["round"] = round;
  j["teacher"] = {{"stage", teacher_stage},
                  {"model", saved.path.lexically_relative(run_dir).string()},
                  {"sha256", saved.sha256}};
  j["pool"] = {{"split", "unlabeled"}, {"size", pool.indices.size(0)}};
  j["selection"] = options_.describe();
  if (rule.rule == Rule::Curriculum) j["selection"]["percentile"] = rule.percentile;
  j["predicted_with"] = options_.predict_with == Options::PredictWith::Ema    ? "ema"
                        : options_.predict_with == Options::PredictWith::Live ? "live"
                                                                              : "teacher";
  if (confusion.defined()) {
    // Per pseudo label: the share of the samples given it whose hidden label agrees (the column's diagonal).
    const at::Tensor given = confusion.sum(0);
    std::vector<nlohmann::json> per_class;
    for (int64_t c = 0; c < confusion.size(0); ++c) {
      const int64_t n = given[c].item<int64_t>();
      per_class.push_back(n ? nlohmann::json(confusion[c][c].item<double>() / static_cast<double>(n)) : nlohmann::json(nullptr));
    }
    j["pseudo_label_accuracy_per_class"] = per_class;
    j["confusion"] = {{"rows", "hidden label"}, {"columns", "pseudo label"}, {"file", dir_name + "/confusion.npy"}};
  }
  j["classes"] = class_names_;
  j["candidates_per_class"] = s.candidates_per_class;
  j["selected_per_class"] = s.selected_per_class;
  std::vector<std::string> short_classes;
  for (int64_t c : s.short_classes) short_classes.push_back(class_names_[static_cast<size_t>(c)]);
  if (options_.selection.rule == Rule::TopKPerClass) j["classes_with_fewer_than_k"] = short_classes;
  j["selected"] = s.size();
  j["entries"] = s.entries();
  j["mean_confidence"] = s.size() ? nlohmann::json(s.confidence.mean().item<double>()) : nlohmann::json(nullptr);
  nlohmann::json files;
  for (const auto& [array, tensor] : arrays) files[array] = dir_name + "/" + array + ".npy";
  j["files"] = files;
  write_json(run_dir / (dir_name + ".json"), j);

  std::string counts;
  for (size_t c = 0; c < class_names_.size(); ++c)
    counts += (c ? ", " : "") + class_names_[c] + " " + std::to_string(s.selected_per_class[c]);
  run_.logger().info("pseudo-label " + name + ": " + std::to_string(s.size()) + " of " +
                     std::to_string(pool.indices.size(0)) + " unlabeled samples selected (" + counts + ")");
  if (!short_classes.empty()) {
    std::string list;
    for (size_t i = 0; i < short_classes.size(); ++i)
      list += (i ? ", " : "") + short_classes[i] + " (" +
              std::to_string(s.candidates_per_class[static_cast<size_t>(s.short_classes[i])]) + ")";
    run_.logger().warn("pseudo-label " + name + ": fewer than k = " + std::to_string(options_.selection.k) +
                       " candidates in class(es) " + list + "; they keep what they have");
  }
  if (s.size() == 0)
    run_.logger().warn("pseudo-label " + name + ": no sample was selected; the student trains on the labeled split "
                       "alone (lower threshold, or use selection = \"top-k-per-class\")");
  return s;
}

void PseudoLabel::finish_round(TrainerServices& services, RoundLog& log, int64_t round, const std::string& stage,
                               Model& model, const RoundStats& stats) {
  const std::string name = round_name(round);
  std::map<std::string, MetricValue> record;
  nlohmann::json entry;
  entry["round"] = round;
  entry["stage"] = stage;
  record["type"] = std::string("round");
  for (const Split split : {Split::Val, Split::Test}) {
    const View view = services.split(split);
    if (view.indices.numel() == 0) continue;
    const EvalResult r = services.evaluate(model, view);
    const std::string key = split == Split::Val ? "val" : "test";
    record[key + "_accuracy"] = r.accuracy;
    record[key + "_loss"] = r.loss;
    entry[key + "_accuracy"] = r.accuracy;
    services.summarize(name + "_" + key + "_accuracy", r.accuracy);
  }
  if (const Selection* s = stats.selection) {
    for (size_t c = 0; c < class_names_.size(); ++c) record["selected/" + class_names_[c]] = s->selected_per_class[c];
    record["selected_total"] = s->size();
    record["pseudo_entries"] = stats.student->pseudo_entries;
    record["labeled_entries"] = stats.student->labeled_entries;
    services.summarize(name + "_selected", s->size());
    entry["selected"] = s->size();
    if (s->size() > 0) record["mean_confidence"] = s->confidence.mean().item<double>();
    if (stats.confusion.defined()) {
      const at::Tensor given = stats.confusion.sum(0);
      for (size_t c = 0; c < class_names_.size(); ++c) {
        const auto i = static_cast<int64_t>(c);
        if (const int64_t n = given[i].item<int64_t>(); n > 0)
          record["pseudo_label_accuracy/" + class_names_[c]] = stats.confusion[i][i].item<double>() / static_cast<double>(n);
      }
    }
    if (const double accuracy = masked_accuracy(s->labels, stats.hidden_labels); accuracy >= 0.0) {
      record["pseudo_label_accuracy"] = accuracy;
      entry["pseudo_label_accuracy"] = accuracy;
      services.summarize(name + "_pseudo_label_accuracy", accuracy);
    }
    if (stats.pool_accuracy >= 0.0) record["teacher_pool_accuracy"] = stats.pool_accuracy;
  }
  // A resumed run replays finished rounds (cheaply: the host loads their trained weights); their metrics
  // are in metrics.jsonl already.
  if (log.contains(round)) return;
  services.log_metrics(record);
  log.record(entry);
  char line[160];
  std::snprintf(line, sizeof line, "pseudo-label %s done (%s): test accuracy %s", name.c_str(), stage.c_str(),
                entry.contains("test_accuracy") ? std::to_string(entry["test_accuracy"].get<double>()).c_str() : "n/a");
  run_.logger().info(line);
}

}  // namespace loom::pseudo_label
