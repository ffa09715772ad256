// The run's checkpoint: everything needed to continue exactly — model, optimizer, position (stage, epoch,
// group, micro-batch), optimizer-step count (the LR schedule's only state), precision and accumulation
// state, running epoch sums and the CPU RNG (dropout). Written atomically: temp file, fsync, rename,
// fsync of the directory, so a crash leaves either the previous checkpoint or the new one.
#pragma once

#include <loom/model.h>
#include <loom/state.h>

#include <torch/optim/optimizer.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace loom::host {

struct TrainPosition {
  std::string stage;
  int64_t round = 0;
  int64_t epoch = 0;            ///< epoch in progress (or the next one when next_micro == 0)
  int64_t next_group = 0;       ///< first group of `epoch` not yet applied
  int64_t next_micro = 0;       ///< first micro-batch of `epoch` not yet consumed
  int64_t optimizer_steps = 0;  ///< steps taken in this stage (skipped steps excluded)
  bool stage_done = false;
  // Running sums of the epoch in progress, so a resumed epoch reports the same metrics.
  double loss_sum = 0.0;
  double correct = 0.0;
  int64_t samples = 0;
  double train_seconds = 0.0;
};

struct CheckpointState {
  TrainPosition position;
  StateDict precision, accumulation;
  at::Tensor cpu_rng;
  /// Gradients accumulated but not yet applied (a checkpoint inside a group, or a remainder carried into
  /// the next epoch), in model.parameters() order; empty when none are pending.
  std::vector<at::Tensor> pending_grads;
};

void write_checkpoint(const std::filesystem::path& file, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                      const CheckpointState& state);

/// Reads the position and plugin states; model and optimizer are restored by restore_checkpoint().
CheckpointState read_checkpoint_state(const std::filesystem::path& file);
void restore_checkpoint(const std::filesystem::path& file, torch::nn::Module& model, torch::optim::Optimizer& optimizer);

/// Saves model weights alone (model.pt): atomically, like the checkpoint.
void write_model(const std::filesystem::path& file, torch::nn::Module& model);

/// Loads weights written by write_model() into `model` (same architecture).
void read_model(const std::filesystem::path& file, torch::nn::Module& model);

/// fsyncs a file or directory; throws on failure.
void fsync_path(const std::filesystem::path& path);

}  // namespace loom::host
