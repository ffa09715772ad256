// The `mpi` communicator: data-parallel ranks on CPUs, any number of hosts, launched with mpirun
// (`mpirun -np 4 loom run CONFIG`, `mpirun --hostfile HOSTS -np 16 loom run CONFIG`).
//
// Collectives are non-blocking MPI calls (MPI_Iallreduce, MPI_Ibcast, MPI_Ibarrier) polled against a
// deadline of `timeout_s`, so a rank that died or hangs turns into a CommunicatorError instead of a hang.
// To name that rank, every rank that timed out pings all others on a separate communicator (a duplicate of
// MPI_COMM_WORLD made at start) and waits a short grace period; a rank waiting in any collective of this
// communicator answers pings while it polls, so the ranks that stay silent are the ones that died or hang.
//
// MPI is initialised by the factory (MPI_THREAD_FUNNELED: every call comes from the thread that created the
// communicator) unless something else already did, and finalised by the destructor of the object that
// initialised it. MPI cannot be initialised twice in one process, so a second mpi communicator after the
// first one was destroyed is refused with a clear error.
#pragma once

#include <loom/communicator.h>
#include <loom/context.h>
#include <loom/registrar.h>

// The C API only: without these, a C++ translation unit also gets MPI's long-deprecated C++ bindings,
// which need libmpi_cxx at link time.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace loom::builtin {

class MpiCommunicator final : public Communicator {
 public:
  static FeatureInfo info();
  explicit MpiCommunicator(const CreateContext& ctx);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  c10::DeviceType device_type() const override { return c10::DeviceType::CPU; }

  void all_reduce(const std::vector<at::Tensor>& tensors, ReduceOp op) override;
  void broadcast(const std::vector<at::Tensor>& tensors, int root) override;
  void barrier() override;
  void abort(const std::string& reason) override;

 private:
  /// Refuses a call after a failed collective (its requests are still pending) or from another thread.
  void check_usable(const char* what) const;
  /// Throws CommunicatorError (marking the communicator failed) when an MPI call did not succeed.
  void check(int rc, const char* call, const char* what);
  /// Numbers the collective, lets `issue` post its requests, waits for them; on any failure keeps
  /// `buffers` alive (pending requests may still write them) and rethrows.
  template <class Issue>
  void collective(const char* what, std::vector<at::Tensor> buffers, Issue issue);
  /// Polls `requests` until all complete, answering other ranks' pings; past the deadline it names the
  /// ranks that do not answer and throws CommunicatorError.
  void wait(std::vector<MPI_Request>& requests, const char* what);
  /// Answers pings that reached this rank (every few milliseconds while it waits).
  void answer_pings();
  /// After a timeout or an MPI error (`mpi_error` set) while waiting: pings every other rank and returns
  /// the message naming the ranks that stay silent.
  std::string diagnose(const char* what, const std::string& mpi_error);

  Logger& logger_;
  double timeout_s_;
  int64_t bucket_bytes_;
  int rank_ = 0, world_ = 1, local_rank_ = 0, local_size_ = 1;
  MPI_Comm comm_ = MPI_COMM_NULL;   ///< the collectives (a duplicate of MPI_COMM_WORLD)
  MPI_Comm alive_ = MPI_COMM_NULL;  ///< pings and answers only, apart from the collectives' traffic
  bool owns_mpi_ = false;           ///< this object initialised MPI, so it finalises it
  bool failed_ = false;             ///< a collective timed out or failed; its requests are still pending
  std::vector<at::Tensor> abandoned_;      ///< buffers of those requests: MPI may still write them
  int64_t sequence_ = 0;                   ///< collectives started so far (shown in timeout messages)
  std::vector<MPI_Request> answer_req_;    ///< per peer: the pending answer to its last ping
  std::vector<int64_t> answer_buf_;        ///< per peer: that answer's payload (our sequence number)
  int64_t ping_payload_ = 0;               ///< our ping's payload; members, since MPI reads and writes
  std::vector<int64_t> ping_answers_;      ///< them after the call that posted them returned
};

}  // namespace loom::builtin
