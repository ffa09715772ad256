// The host's TrainerServices: one training stage per train() call (see loop.h for the loop's parts),
// prediction and evaluation, checkpoints and resume. A self-training plugin drives it; the neutral one
// calls train() once.
#pragma once

#include "loop/augment_pipelines.h"
#include "loop/callbacks.h"
#include "state/checkpoint.h"
#include "state/providers.h"
#include "loop/data_parallel.h"
#include "loop/evaluation.h"
#include "plugins/guarded_plugins.h"
#include "loop/loop.h"
#include "loop/loop_options.h"
#include "loop/metric_hub.h"
#include "loop/model_book.h"
#include "loop/position.h"
#include "loop/progress.h"
#include "plugins/registry.h"
#include "config/resolve.h"
#include "plugins/run_context.h"
#include "loop/stage_plan.h"
#include "loop/stop.h"

#include <loom/self_training.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>

namespace loom::host {

/// The state of the global generator of `device` (CPU, or the CUDA device's), and back.
at::Tensor rng_state(c10::Device device);
void set_rng_state(c10::Device device, const at::Tensor& state);

struct RunPlugins {
  std::shared_ptr<GuardedDataset> dataset;  ///< already wrapped by the cache
  Slot<Precision> precision;
  Slot<Accumulation> accumulation;
  Slot<Communicator> communicator;  ///< a world of one unless the run is distributed
  CallbackSet callbacks;
  MetricHub metrics;
  AugmentPipelines augmentations;
};

class Trainer final : public TrainerServices {
 public:
  /// `run_dir` is where checkpoints and finished stages are read from on resume (on every rank) and
  /// written to (by rank 0 only; the context's run_dir() is a scratch directory on other ranks).
  /// `resume`: the checkpoint a resumed run continues from (its callback and sink states already loaded).
  Trainer(const ResolvedConfig& config, const Registry& registry, HostRunContext& context, RunPlugins& plugins,
          std::shared_ptr<CheckpointReader> resume, std::filesystem::path run_dir);

  const Dataset& dataset() const override { return *plugins_.dataset; }
  View split(Split split) const override;
  std::shared_ptr<Model> create_model() override;
  std::shared_ptr<Model> create_student_model() override;
  std::shared_ptr<Model> stage_weights(const std::string& stage, StageWeights which) override;
  std::vector<std::string> augmentation_pipelines() const override { return plugins_.augmentations.names(); }
  void train(Model& model, const TrainRequest& request) override;
  at::Tensor predict(Model& model, const View& view) override { return evaluator_.predict(model, view); }
  EvalResult evaluate(Model& model, const View& view) override { return evaluator_.evaluate(model, view); }
  void log_metrics(const std::map<std::string, MetricValue>& record) override;
  SavedModel save_model(Model& model, const std::string& name) override;
  void summarize(const std::string& key, const MetricValue& value) override { summary_[key] = value; }

  /// Keys the driver and callbacks added, for summary.json.
  const std::map<std::string, MetricValue>& summary_entries() const { return summary_; }
  /// Over the whole run, every process of it (a resumed run continues the counts).
  double samples_per_second() const { return train_seconds_ > 0 ? train_samples_ / train_seconds_ : 0.0; }
  int64_t epochs_run() const { return epochs_run_; }
  int64_t optimizer_steps_run() const { return steps_run_; }
  double wall_seconds() const;
  const LoopOptions& options() const { return options_; }

  std::filesystem::path checkpoint_file() const { return run_dir_ / "checkpoint.pt"; }
  /// Final weights of a finished stage: a resumed run loads them instead of training the stage again.
  std::filesystem::path stage_file(const std::string& stage) const { return run_dir_ / "stages" / (stage + ".pt"); }
  /// Where a callback substitutes an averaged model (ema): the stage's live weights before on_stage_end,
  /// and the averaged ones after it (StageWeights).
  std::filesystem::path stage_file(const std::string& stage, StageWeights which) const {
    return run_dir_ / "stages" / (stage + (which == StageWeights::Live ? ".live.pt" : ".averaged.pt"));
  }

 private:
  std::shared_ptr<Model> clone_model(const Model& model);
  /// The one way a model comes to be: created from `choice` ([model] or [student_model]), moved to the
  /// device, prepared by the precision plugin, kept in the book. `run_model`: one of the run's models
  /// (seeded from the count of them), not a clone or reloaded weights (which touch no random stream).
  std::shared_ptr<Model> build_model(const PluginChoice& choice, bool run_model);
  /// Creates the k-th model of the run from `choice` ([model] or [student_model]).
  std::shared_ptr<Model> create_from(const PluginChoice& choice);
  /// The table a model was created from: clones and stage weights use the same architecture.
  const PluginChoice& architecture_of(const Model& model) const;
  void run_stage(Loop& loop, StageRun& run);
  void restore_stage(StageRun& run);
  void save_checkpoint(const TrainPosition& pos);
  /// The providers of the whole run (host/state/providers.h): totals and summary, callbacks, sinks.
  void register_run_state();
  /// The providers of one stage, registered while it runs: position, model, optimizer, schedule, pending
  /// gradients, precision, the epoch's sums, RNGs (accumulation is registered before the planner runs).
  void register_stage_state(StageRun& run, std::vector<StateRegistry::Registration>& out);

  const ResolvedConfig& config_;
  const Registry& registry_;
  HostRunContext& context_;
  RunPlugins& plugins_;
  std::shared_ptr<CheckpointReader> resume_;
  std::filesystem::path run_dir_;
  LoopOptions options_;
  ModelBook models_;  ///< before evaluator_, which refers to it
  DataParallel dp_;
  at::Tensor labels_;
  Evaluator evaluator_;
  Progress progress_;
  std::map<std::string, MetricValue> summary_;
  StageControl control_;
  std::string stage_ = "setup";
  int64_t round_ = 0;
  bool warned_batchnorm_ = false;
  int64_t models_created_ = 0;
  std::set<std::string> stages_seen_;
  std::set<std::string> student_stages_;  ///< stages trained with a [student_model] model
  std::set<std::string> finished_stages_;  ///< trained to their end (or replayed) in this process
  std::set<std::string> averaged_stages_;  ///< finished with an averaged model kept (stage_file(…, Averaged))
  // Run totals, continued across resumes from the checkpoint's "run" entry.
  double train_samples_ = 0.0, train_seconds_ = 0.0, wall_before_ = 0.0;
  int64_t epochs_run_ = 0, steps_run_ = 0;
  std::chrono::steady_clock::time_point process_start_ = std::chrono::steady_clock::now();
  // What a checkpoint holds: every provider registered here (declared before the registrations it outlives).
  StateRegistry state_;
  std::vector<StateRegistry::Registration> run_state_;
  std::unique_ptr<StateSource> source_;  ///< resume_ by stable keys, until its stage is restored
  TrainPosition saving_;                 ///< the position the checkpoint being written records
  at::Tensor rank_sums_;                 ///< [world, 5]: every rank's running sums at saving_ (gathered)
};

}  // namespace loom::host
