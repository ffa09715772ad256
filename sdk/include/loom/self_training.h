// A self-training strategy is the run's driver: it decides what is trained on what, through the host's
// trainer services. The neutral `none` plugin trains one model on the labeled split and returns it.
#pragma once

#include <loom/dataset.h>
#include <loom/kinds.h>
#include <loom/metrics.h>
#include <loom/model.h>
#include <loom/state.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace loom {

/// A subset of the run's dataset, with optional label overrides and per-sample weights.
struct View {
  at::Tensor indices;   ///< int64 [n] into the dataset
  at::Tensor targets;   ///< undefined: the dataset's labels; int64 [n]: hard labels; float [n, C]: soft
  at::Tensor weights;   ///< undefined: 1 each; float [n]: per-sample loss weights
  bool augment = true;  ///< training applies the stage's augmentation pipeline (predict/evaluate never do)
};

struct TrainRequest {
  /// Names this training stage ("supervised", "round1/student", …). Checkpoints and metrics carry it;
  /// --resume continues the stage whose name matches.
  std::string stage = "supervised";
  int64_t round = 0;    ///< reported in metrics
  int64_t epochs = 0;   ///< 0: the run's [run] epochs
  View data;            ///< what to train on
  /// false: the model's dropout modules stay in eval mode during this stage (no dropout noise); the
  /// student-noise switch of self-training.
  bool dropout = true;
  /// The augmentation pipeline ([[augmentation]] tables with this `pipeline` name) applied to this stage's
  /// batches when data.augment is true. "default" is the tables without a `pipeline` key; a pipeline no
  /// table names is empty (no augmentation) for "default" and an error for any other name.
  std::string augmentation = "default";
};

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;
  int64_t samples = 0;
};

/// A model saved by TrainerServices::save_model.
struct SavedModel {
  std::filesystem::path path;  ///< inside the run directory
  std::string sha256;          ///< of the file's bytes, lower-case hex
};

/// Which weights of a finished stage TrainerServices::stage_weights returns.
enum class StageWeights {
  /// The weights training left, before any callback's on_stage_end (e.g. before the `ema` callback copies
  /// its average in). Without such a callback: the stage's result.
  Live,
  /// The model a callback evaluates in place of the live one at the stage's end: the `ema` callback's
  /// average. None (nullptr) when no callback substitutes one.
  Averaged,
};

/// The host's training services. Each call runs the host's loop with the run's optimizer, LR schedule,
/// precision, accumulation, loader and checkpointing.
class TrainerServices {
 public:
  virtual ~TrainerServices() = default;
  /// The run's dataset (cached, when a cache is configured).
  virtual const Dataset& dataset() const = 0;
  /// A view of a split with the dataset's own labels.
  virtual View split(Split split) const = 0;
  /// A freshly initialised model from the run's [model] table, on the run's device. The k-th call of a run
  /// initialises from a seed derived from the run seed and k, so a resumed run recreates the same models.
  virtual std::shared_ptr<Model> create_model() = 0;
  /// A freshly initialised model for a student: the run's [student_model] table (keys that replace
  /// [model]'s, or another model plugin with its own keys), or [model] when the run has none. Counts as one
  /// of the create_model() calls for seeding. (SDK 0.5)
  virtual std::shared_ptr<Model> create_student_model() = 0;
  /// Trains `model` in place (a fresh optimizer and LR schedule per call; validation each epoch).
  /// Resuming a run: a stage that had finished before the interruption is not trained again; its final
  /// weights are loaded instead, so a deterministic driver replays completed rounds cheaply and exactly.
  virtual void train(Model& model, const TrainRequest& request) = 0;
  /// A copy of a finished stage's weights (this process's, or a resumed run's replayed stage) as a new
  /// model of the stage's architecture; nullptr for StageWeights::Averaged when no callback substituted
  /// an averaged model. Throws std::invalid_argument for a stage that has not finished. (SDK 0.5)
  virtual std::shared_ptr<Model> stage_weights(const std::string& stage, StageWeights which) = 0;
  /// The names of the run's augmentation pipelines ("default" always among them), for validating a
  /// TrainRequest::augmentation before the first stage trains. (SDK 0.5)
  virtual std::vector<std::string> augmentation_pipelines() const = 0;
  /// Class probabilities [n, C] (float, CPU) in eval mode, batched, without augmentation.
  virtual at::Tensor predict(Model& model, const View& view) = 0;
  virtual EvalResult evaluate(Model& model, const View& view) = 0;
  /// Appends one record to metrics.jsonl (the host adds the stage and timestamps).
  virtual void log_metrics(const std::map<std::string, MetricValue>& record) = 0;
  /// Saves the model's weights atomically as `<run_dir>/models/<name>.pt` (loadable like model.pt) and
  /// returns its path and hash, e.g. to record which teacher produced a set of pseudo labels.
  virtual SavedModel save_model(Model& model, const std::string& name) = 0;
  /// Adds (or replaces) a top-level key in the run's summary.json, e.g. "round2_test_accuracy".
  virtual void summarize(const std::string& key, const MetricValue& value) = 0;
};

class SelfTraining {
 public:
  virtual ~SelfTraining() = default;
  /// Drives the run; returns the final model, which the host tests and reports in summary.json.
  virtual std::shared_ptr<Model> run(TrainerServices& services) = 0;
};

/// The self training kind: the driver: `none` trains once.
template <>
struct KindTraits<SelfTraining> : KindTraitsBase {
  static constexpr Kind kind = Kind::SelfTraining;
  static constexpr std::string_view neutral = "none";
  static constexpr int order = 80;
};

}  // namespace loom
