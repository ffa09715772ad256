// The host's TrainerServices: the training loop (see docs/architecture.md), prediction and evaluation.
// A self-training plugin drives it; the neutral one calls train() once.
#pragma once

#include "checkpoint.h"
#include "metrics.h"
#include "progress.h"
#include "registry.h"
#include "resolve.h"
#include "run_context.h"

#include <loom/accumulation.h>
#include <loom/communicator.h>
#include <loom/precision.h>
#include <loom/self_training.h>

#include <chrono>
#include <map>
#include <set>
#include <optional>

namespace loom::host {

/// Thrown out of train() after a stop request (SIGINT/SIGTERM) once the checkpoint is written.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Async-signal-safe stop request, checked after every optimizer-step group.
void request_stop();
bool stop_requested();

struct RunPlugins {
  std::shared_ptr<Dataset> dataset;  ///< already wrapped by the cache
  std::shared_ptr<Precision> precision;
  std::shared_ptr<Accumulation> accumulation;
  std::shared_ptr<Communicator> communicator;  ///< world of one unless the run is distributed
};

class Trainer final : public TrainerServices {
 public:
  /// `run_dir` is the run directory checkpoints and finished stages are read from on resume (on every
  /// rank) and written to (by rank 0 only; the context's run_dir() is a scratch directory on other ranks).
  Trainer(const ResolvedConfig& config, const Registry& registry, HostRunContext& context, RunPlugins plugins,
          MetricsWriter& metrics, std::optional<CheckpointState> resume, std::filesystem::path run_dir);

  const Dataset& dataset() const override { return *plugins_.dataset; }
  View split(Split split) const override;
  std::shared_ptr<Model> create_model() override;
  void train(Model& model, const TrainRequest& request) override;
  at::Tensor predict(Model& model, const View& view) override;
  EvalResult evaluate(Model& model, const View& view) override;
  void log_metrics(const std::map<std::string, MetricValue>& record) override;
  SavedModel save_model(Model& model, const std::string& name) override;
  void summarize(const std::string& key, const MetricValue& value) override;

  /// Keys the driver added with summarize(), for summary.json.
  const std::map<std::string, MetricValue>& summary_entries() const { return summary_; }

  /// Training throughput over every epoch this process ran.
  double samples_per_second() const { return train_seconds_ > 0 ? train_samples_ / train_seconds_ : 0.0; }
  int64_t epochs_run() const { return epochs_run_; }
  std::filesystem::path checkpoint_file() const { return run_dir_ / "checkpoint.pt"; }
  /// Final weights of a finished stage: a resumed run loads them instead of training the stage again.
  std::filesystem::path stage_file(const std::string& stage) const;

 private:
  struct EvalSums;
  EvalSums run_eval(Model& model, const View& view, bool keep_probabilities);
  std::vector<EpochPlan> plan_epochs(int64_t epochs, const std::vector<int64_t>& sizes, int64_t* total_steps) const;
  [[noreturn]] void interrupt(Model& model, torch::optim::Optimizer& optimizer, TrainPosition& pos, const at::Tensor& loss_sum,
                              const at::Tensor& correct, std::chrono::steady_clock::time_point epoch_start);
  std::optional<int64_t> probe_micro_batch(Model& model, const View& view, int64_t size);
  // Data parallelism (no-ops in a world of one).
  bool distributed() const { return world_ > 1; }
  bool primary() const { return rank_ == 0; }
  void all_reduce_grads(Model& model);
  /// Checkpoint at `pos`, written by rank 0 (pending gradients averaged over the ranks first).
  void save_checkpoint(Model& model, torch::optim::Optimizer& optimizer, const TrainPosition& pos);
  bool all_agree_to_stop();
  void sync_batchnorm(const std::vector<std::shared_ptr<torch::nn::Module>>& batchnorms);
  void verify_replicas(Model& model, int64_t step);
  void apply_batchnorm_policy(const std::vector<std::shared_ptr<torch::nn::Module>>& batchnorms,
                              const std::vector<EpochPlan>& plans, int64_t micro_batch);

  const ResolvedConfig& config_;
  const Registry& registry_;
  HostRunContext& context_;
  RunPlugins plugins_;
  MetricsWriter& metrics_;
  std::optional<CheckpointState> resume_;
  std::filesystem::path run_dir_;
  int rank_ = 0, world_ = 1;
  double comm_seconds_ = 0.0;  ///< gradient all-reduce time in the current epoch
  at::Tensor labels_;
  Progress progress_;
  std::string stage_ = "setup";
  int64_t round_ = 0;
  double train_samples_ = 0.0, train_seconds_ = 0.0;
  int64_t epochs_run_ = 0;
  bool freeze_batchnorm_ = false, warned_batchnorm_ = false;
  int64_t models_created_ = 0;
  std::set<std::string> stages_seen_;
  std::map<std::string, MetricValue> summary_;
};

}  // namespace loom::host
