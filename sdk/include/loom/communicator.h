// A communicator connects the processes of a data-parallel run. The host's loop is its only user: it
// broadcasts the initial weights from rank 0, gives each rank its shard of every epoch, all-reduces the
// gradients once per optimizer step (after the last micro-batch of an accumulation group), all-reduces
// evaluation sums, and lets rank 0 alone write the run directory. No other plugin needs to know whether
// the run is distributed. The neutral `none` plugin is a world of one process.
//
// Every collective must be called by all ranks in the same order with tensors of the same shapes and
// dtypes. A collective that cannot complete within the plugin's timeout (a rank died or hangs) must throw
// CommunicatorError naming the rank(s) it waited for, never block forever.
#pragma once

#include <loom/kinds.h>

#include <ATen/core/Tensor.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace loom {

enum class ReduceOp { Sum, Avg, Max };

/// A collective failed or timed out; the message names the rank(s) and the cause.
class CommunicatorError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// Rank among the processes of this host (selects the GPU; local rank 0 builds a host's caches).
  virtual int local_rank() const = 0;
  /// Number of processes on this host.
  virtual int local_size() const = 0;
  /// The device kind the collectives accept (kCPU for mpi, kCUDA for nccl).
  virtual c10::DeviceType device_type() const = 0;

  /// In place, over every tensor in `tensors` (contiguous, on device_type(); the plugin may flatten them
  /// into buckets). Avg divides by world_size().
  virtual void all_reduce(const std::vector<at::Tensor>& tensors, ReduceOp op) = 0;
  /// In place: every rank ends with `root`'s values.
  virtual void broadcast(const std::vector<at::Tensor>& tensors, int root) = 0;
  virtual void barrier() = 0;
  /// Best-effort: makes the other ranks fail fast (MPI_Abort, ncclCommAbort) after a local failure, so
  /// nobody waits for the timeout. May not return.
  virtual void abort(const std::string& reason) = 0;
};

/// The communicator kind: created first: it decides the device and which rank writes.
template <>
struct KindTraits<Communicator> : KindTraitsBase {
  static constexpr Kind kind = Kind::Communicator;
  static constexpr std::string_view neutral = "none";
  static constexpr int order = 10;
};

}  // namespace loom
