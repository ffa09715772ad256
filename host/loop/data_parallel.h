// Everything data parallelism adds to the loop, in one place: identical initial replicas, one gradient
// all-reduce per optimizer step, stop agreement at group boundaries, BatchNorm statistics, the replica
// check, epoch and evaluation sums. In a world of one process every method is a cheap no-op.
#pragma once

#include "plugins/slot.h"

#include <loom/communicator.h>
#include <loom/model.h>

#include <memory>
#include <utility>
#include <vector>

namespace loom::host {

class DataParallel {
 public:
  DataParallel(Slot<Communicator> communicator, c10::Device device);

  bool active() const { return world_ > 1; }
  int rank() const { return rank_; }
  int world() const { return world_; }
  bool primary() const { return rank_ == 0; }
  const Slot<Communicator>& communicator() const { return communicator_; }

  /// Rank 0's weights and buffers everywhere.
  void broadcast_model(torch::nn::Module& model);
  /// Rank 0's value everywhere (e.g. a probed micro-batch size).
  int64_t agree(int64_t value);
  /// Averages the gradients over the ranks (a rank without samples in the step contributes zeros).
  void all_reduce_grads(torch::nn::Module& model);
  /// Before a checkpoint: pending gradients averaged, so rank 0's checkpoint holds what every rank needs.
  void average_pending_grads(torch::nn::Module& model);
  /// Whether any rank wants to stop: {a signal (SIGINT/SIGTERM), a callback's stage stop}. A rank that
  /// got no signal adopts the others' (request_stop()).
  std::pair<bool, bool> agree_to_stop(bool signal, bool stage_stop);
  /// In place, over every rank.
  void sum(at::Tensor& t);
  void sync_batchnorm(const std::vector<std::shared_ptr<torch::nn::Module>>& batchnorms);
  /// Fails when the ranks' weights differ after optimizer step `step`.
  void verify_replicas(torch::nn::Module& model, int64_t step);

  /// Seconds this rank spent in the gradient all-reduce since the last call.
  double take_allreduce_seconds();

 private:
  Slot<Communicator> communicator_;
  c10::Device device_;
  int rank_ = 0, world_ = 1;
  double allreduce_seconds_ = 0.0;
};

}  // namespace loom::host
