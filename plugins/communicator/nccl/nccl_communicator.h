// The `nccl` communicator: data-parallel ranks on CUDA GPUs through NCCL, one process per GPU, launched
// torchrun-style (see launch_env.h). The ranks meet at a c10d::TCPStore on MASTER_ADDR:MASTER_PORT (rank 0
// serves it, unless torchrun's agent already does), where rank 0 publishes the NCCL unique id.
//
// Collectives run on the current CUDA stream of the rank's GPU (cuda:LOCAL_RANK), after whatever the host
// queued there (the backward pass), grouped with ncclGroupStart/End over buckets. The communicator is
// non-blocking (ncclConfig_t::blocking = 0), so no NCCL call can hang: each collective polls
// ncclCommGetAsyncError and the stream until done or `timeout_s`, then aborts the communicator
// (ncclCommAbort) and throws CommunicatorError. Every rank records in the store the number of the
// collective it entered, so that error names the ranks that are behind (they died or hang); abort() leaves
// its reason in the store, where waiting ranks find it within a second.
#pragma once

#include "launch_env.h"

#include <loom/communicator.h>
#include <loom/context.h>
#include <loom/registrar.h>

#include <c10/cuda/CUDAStream.h>
#include <c10/util/intrusive_ptr.h>
#include <nccl.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace c10d {
class Store;
}

namespace loom::builtin {

class NcclCommunicator final : public Communicator {
 public:
  static FeatureInfo info();
  explicit NcclCommunicator(const CreateContext& ctx);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return launch_.rank; }
  int world_size() const override { return launch_.world_size; }
  int local_rank() const override { return launch_.local_rank; }
  int local_size() const override { return launch_.local_size; }
  c10::DeviceType device_type() const override { return c10::DeviceType::CUDA; }

  void all_reduce(const std::vector<at::Tensor>& tensors, ReduceOp op) override;
  void broadcast(const std::vector<at::Tensor>& tensors, int root) override;
  void barrier() override;
  void abort(const std::string& reason) override;

 private:
  using Clock = std::chrono::steady_clock;

  /// Joins the store, shares the unique id and creates the NCCL communicator (all within timeout_s).
  void connect(Clock::time_point deadline);
  /// Refuses a call after a failed collective (the NCCL communicator is aborted).
  void check_usable(const char* what) const;
  /// Numbers the collective and records the number in the store (for timeout messages).
  void enter(const char* what);
  /// Throws CommunicatorError (after aborting the communicator) unless `r` is ncclSuccess/ncclInProgress.
  void check(ncclResult_t r, const char* call, const char* what);
  /// All-reduces checked tensors (all_reduce, and barrier's one element): buckets in one NCCL group.
  void reduce(const char* what, const std::vector<at::Tensor>& tensors, ReduceOp op);
  /// Polls until NCCL has issued everything and the stream has run it; aborts and throws past the deadline.
  void wait(const char* what, Clock::time_point deadline);
  /// Another rank's abort() reason from the store, or "" (store trouble counts as none: the NCCL timeout
  /// still applies).
  std::string abort_reason_from_store();
  /// The error for a collective that did not finish: which ranks are behind, from the store.
  std::string diagnose_timeout(const char* what);
  /// ncclCommAbort once; later calls and the destructor then leave NCCL alone.
  void abort_nccl();

  Logger& logger_;
  double timeout_s_;
  int64_t bucket_bytes_;
  nccl_launch::Launch launch_;
  c10::DeviceIndex device_ = 0;
  c10::intrusive_ptr<c10d::Store> store_;
  ncclComm_t comm_ = nullptr;
  bool failed_ = false;
  int64_t sequence_ = 0;
  at::Tensor barrier_buf_;  ///< the one element a barrier all-reduces
};

}  // namespace loom::builtin
