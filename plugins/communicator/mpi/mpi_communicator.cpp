#include "mpi_communicator.h"

#include "../common/comm_common.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>

namespace loom::builtin {

namespace cc = comm_common;

namespace {

constexpr int kPingTag = 1;
constexpr int kAnswerTag = 2;
using Clock = std::chrono::steady_clock;

const cc::TensorRequirements kCpuTensors{
    .device_type = c10::DeviceType::CPU,
    .index = std::nullopt,
    .dtypes = {at::kFloat, at::kDouble, at::kInt, at::kLong},
    .device_hint = " (the mpi communicator works on CPU tensors; use [communicator] plugin = \"nccl\" for CUDA)"};

/// How long a rank that timed out waits for the others to answer its ping: long enough for a live rank
/// that polls every few milliseconds, short next to the timeout itself.
double grace_seconds(double timeout_s) { return std::clamp(timeout_s / 20.0, 1.0, 5.0); }

Clock::time_point after(Clock::time_point t, double seconds) {
  return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Loom loads plugins with RTLD_LOCAL, so libmpi (a dependency of this plugin) is loaded with its symbols
// hidden from libraries opened later. Open MPI opens its MCA components (mca_*.so) with dlopen at
// MPI_Init; builds whose components do not link libmpi/libopen-pal themselves resolve those symbols from
// the global scope and fail with "undefined symbol" (a known problem of older Open MPI releases; Debian
// 12's 4.1.4 links them and works either way, checked with a RTLD_LOCAL test host). Re-opening the
// already loaded library with RTLD_NOLOAD | RTLD_GLOBAL promotes it (and its dependencies) to the global
// scope without loading anything new; the handle is kept, so libmpi also stays loaded until the process
// exits (unloading it after MPI_Finalize is unsafe). dladdr finds the file that provides MPI_Init_thread,
// whatever its soname.
void promote_libmpi_to_global() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) && info.dli_fname)
    ::dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

MPI_Datatype mpi_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kInt: return MPI_INT32_T;
    case at::kLong: return MPI_INT64_T;
    default: throw std::logic_error("mpi: no MPI type for " + cc::dtype_name(t));  // check_tensors ran first
  }
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Max ? MPI_MAX : MPI_SUM; }  // Avg: Sum, then divide

std::string error_text(int rc) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return std::string(text, static_cast<size_t>(std::max(0, len)));
}

std::string library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  MPI_Get_library_version(text, &len);
  std::string s(text, static_cast<size_t>(std::max(0, len)));
  return s.substr(0, s.find_first_of(",\n"));  // "Open MPI v4.1.4"
}

}  // namespace

FeatureInfo MpiCommunicator::info() {
  return {.name = "mpi",
          .version = "1.0.0",
          .summary = "data-parallel ranks on CPUs through MPI: launch with mpirun, one or many hosts",
          .params = {cc::timeout_param(), cc::bucket_mb_param()}};
}

MpiCommunicator::MpiCommunicator(const CreateContext& ctx)
    : logger_(ctx.run.logger()), timeout_s_(ctx.params.real("timeout_s")),
      bucket_bytes_(static_cast<int64_t>(ctx.params.real("bucket_mb") * 1024.0 * 1024.0)) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    throw std::runtime_error("mpi: MPI was already finalised in this process (an earlier mpi communicator ended); "
                             "MPI can be initialised only once per process, so create one mpi communicator per process");
  // Read before MPI_Init: a singleton init sets PMIX_RANK itself.
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
  int provided = 0;
  if (!initialized) {
    promote_libmpi_to_global();
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw std::runtime_error("mpi: MPI_Init_thread failed (Open MPI's messages above say why); launch with "
                               "`mpirun -np N loom run CONFIG`");
    owns_mpi_ = true;
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_FUNNELED)
    throw std::runtime_error("mpi: the MPI library provides thread level " + std::to_string(provided) +
                             ", below MPI_THREAD_FUNNELED, which a multi-threaded process like loom needs");

  // Private duplicates of MPI_COMM_WORLD: errors come back as return codes (turned into exceptions) instead
  // of aborting, and neither our collectives nor our pings can match anybody else's traffic.
  auto dup = [](MPI_Comm& out) {
    if (MPI_Comm_dup(MPI_COMM_WORLD, &out) != MPI_SUCCESS) throw std::runtime_error("mpi: MPI_Comm_dup failed");
    MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN);
  };
  dup(comm_);
  dup(alive_);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &world_);
  MPI_Comm local = MPI_COMM_NULL;
  if (MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local) != MPI_SUCCESS)
    throw std::runtime_error("mpi: MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed: cannot tell the ranks of this host");
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
  answer_req_.assign(static_cast<size_t>(world_), MPI_REQUEST_NULL);
  answer_buf_.assign(static_cast<size_t>(world_), 0);
  ping_answers_.assign(static_cast<size_t>(world_), -1);

  char host[MPI_MAX_PROCESSOR_NAME] = {};
  int host_len = 0;
  MPI_Get_processor_name(host, &host_len);
  logger_.info("mpi: rank " + std::to_string(rank_) + " of " + std::to_string(world_) + " (local " +
               std::to_string(local_rank_) + " of " + std::to_string(local_size_) + ") on host " +
               std::string(host, static_cast<size_t>(std::max(0, host_len))) + "; " + library_version() +
               "; timeout " + cc::seconds(timeout_s_) + ", buckets of " + c10::str(ctx.params.real("bucket_mb")) + " MB");
  if (world_ == 1 && !launched)
    logger_.warn("mpi: this process was not started by mpirun, so it is a world of one rank; launch N ranks with "
                 "`mpirun -np N loom run CONFIG`");
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  // After a failed collective its requests are still pending: MPI_Finalize would wait for peers that may
  // never come. The process is about to exit with the error, and mpirun then ends the other ranks.
  if (finalized || failed_) return;
  for (MPI_Request& r : answer_req_)
    if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
  MPI_Comm_free(&alive_);
  MPI_Comm_free(&comm_);
  if (owns_mpi_) MPI_Finalize();
}

void MpiCommunicator::check_usable(const char* what) const {
  if (failed_)
    throw CommunicatorError(std::string("mpi: ") + what + " refused: an earlier collective failed on rank " +
                            std::to_string(rank_) + ", so the ranks are out of step; end the run. " + cc::resume_advice());
  int main_thread = 0;
  MPI_Is_thread_main(&main_thread);
  if (!main_thread)
    throw std::logic_error(std::string("mpi: ") + what + " called from a thread other than the one that created "
                           "the communicator; MPI runs with MPI_THREAD_FUNNELED, so every collective must come from that thread");
}

void MpiCommunicator::check(int rc, const char* call, const char* what) {
  if (rc == MPI_SUCCESS) return;
  failed_ = true;
  throw CommunicatorError(std::string("mpi: ") + what + ": " + call + " failed on rank " + std::to_string(rank_) +
                          " (of " + std::to_string(world_) + "): " + error_text(rc) + ". " + cc::resume_advice());
}

template <class Issue>
void MpiCommunicator::collective(const char* what, std::vector<at::Tensor> buffers, Issue issue) {
  ++sequence_;
  std::vector<MPI_Request> requests;
  try {
    issue(requests);
    wait(requests, what);
  } catch (...) {
    // Requests may still be pending and write into these buffers later: keep them alive.
    abandoned_.insert(abandoned_.end(), buffers.begin(), buffers.end());
    throw;
  }
}

void MpiCommunicator::all_reduce(const std::vector<at::Tensor>& tensors, ReduceOp op) {
  check_usable("all_reduce");
  cc::check_tensors("mpi: all_reduce", tensors, kCpuTensors);
  if (op == ReduceOp::Avg) {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (!at::isFloatingType(tensors[i].scalar_type()))
        throw std::invalid_argument("mpi: all_reduce: Avg of tensor " + std::to_string(i) + " (" +
                                    cc::dtype_name(tensors[i].scalar_type()) +
                                    ") would truncate; average floating-point tensors, or Sum integers and divide");
  }
  const std::vector<cc::FlatGroup> groups = cc::pack(tensors, bucket_bytes_, /*copy_in=*/true);
  std::vector<at::Tensor> buffers;
  for (const cc::FlatGroup& g : groups) buffers.push_back(g.flat);
  collective("all_reduce", buffers, [&](std::vector<MPI_Request>& requests) {
    for (const cc::FlatGroup& g : groups) {
      for (const cc::Bucket& b : g.buckets) {
        requests.push_back(MPI_REQUEST_NULL);
        check(MPI_Iallreduce(MPI_IN_PLACE, g.data(b), static_cast<int>(b.count), mpi_type(g.dtype), mpi_op(op), comm_,
                             &requests.back()),
              "MPI_Iallreduce", "all_reduce");
      }
    }
  });
  for (const cc::FlatGroup& g : groups) {
    if (op == ReduceOp::Avg) g.flat.div_(world_);
    g.unpack();
  }
}

void MpiCommunicator::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  check_usable("broadcast");
  cc::check_tensors("mpi: broadcast", tensors, kCpuTensors);
  if (root < 0 || root >= world_)
    throw std::invalid_argument("mpi: broadcast: root " + std::to_string(root) + " is not a rank (world size " +
                                std::to_string(world_) + ")");
  const std::vector<cc::FlatGroup> groups = cc::pack(tensors, bucket_bytes_, /*copy_in=*/rank_ == root);
  std::vector<at::Tensor> buffers;
  for (const cc::FlatGroup& g : groups) buffers.push_back(g.flat);
  collective("broadcast", buffers, [&](std::vector<MPI_Request>& requests) {
    for (const cc::FlatGroup& g : groups) {
      for (const cc::Bucket& b : g.buckets) {
        requests.push_back(MPI_REQUEST_NULL);
        check(MPI_Ibcast(g.data(b), static_cast<int>(b.count), mpi_type(g.dtype), root, comm_, &requests.back()),
              "MPI_Ibcast", "broadcast");
      }
    }
  });
  if (rank_ != root)
    for (const cc::FlatGroup& g : groups) g.unpack();
}

void MpiCommunicator::barrier() {
  check_usable("barrier");
  collective("barrier", {}, [&](std::vector<MPI_Request>& requests) {
    requests.push_back(MPI_REQUEST_NULL);
    check(MPI_Ibarrier(comm_, &requests.back()), "MPI_Ibarrier", "barrier");
  });
}

void MpiCommunicator::abort(const std::string& reason) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  logger_.warn("mpi: rank " + std::to_string(rank_) + " ends all " + std::to_string(world_) +
               " ranks (MPI_Abort) after: " + reason);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

void MpiCommunicator::wait(std::vector<MPI_Request>& requests, const char* what) {
  const Clock::time_point start = Clock::now(), deadline = after(start, timeout_s_);
  Clock::time_point next_answer = start;
  cc::Backoff backoff;
  for (;;) {
    int done = 0;
    // An error here is often a peer that went away (a broken TCP connection): name it like a timeout.
    if (const int rc = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
        rc != MPI_SUCCESS) {
      failed_ = true;
      throw CommunicatorError(diagnose(what, error_text(rc)));
    }
    if (done) return;
    const Clock::time_point now = Clock::now();
    if (now >= next_answer) {
      answer_pings();
      next_answer = now + std::chrono::milliseconds(5);
    }
    if (now >= deadline) {
      failed_ = true;
      throw CommunicatorError(diagnose(what, ""));
    }
    backoff.pause();
  }
}

// Best effort throughout: a failing ping or answer only means that peer is named as silent.
void MpiCommunicator::answer_pings() {
  for (;;) {
    int flag = 0;
    MPI_Status status;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kPingTag, alive_, &flag, &status) != MPI_SUCCESS || !flag) return;
    const int peer = status.MPI_SOURCE;
    int64_t their_sequence = 0;
    if (MPI_Recv(&their_sequence, 1, MPI_INT64_T, peer, kPingTag, alive_, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
    MPI_Request& pending = answer_req_[static_cast<size_t>(peer)];
    if (pending != MPI_REQUEST_NULL) {
      int done = 0;
      MPI_Test(&pending, &done, MPI_STATUS_IGNORE);
      if (!done) continue;  // the peer has not taken our last answer yet: one in flight is enough
    }
    answer_buf_[static_cast<size_t>(peer)] = sequence_;
    MPI_Isend(&answer_buf_[static_cast<size_t>(peer)], 1, MPI_INT64_T, peer, kAnswerTag, alive_, &pending);
  }
}

std::string MpiCommunicator::diagnose(const char* what, const std::string& mpi_error) {
  const size_t n = static_cast<size_t>(world_);
  std::vector<MPI_Request> answers(n, MPI_REQUEST_NULL);
  ping_payload_ = sequence_;
  std::fill(ping_answers_.begin(), ping_answers_.end(), -1);
  for (int p = 0; p < world_; ++p) {
    if (p == rank_) continue;
    MPI_Irecv(&ping_answers_[static_cast<size_t>(p)], 1, MPI_INT64_T, p, kAnswerTag, alive_, &answers[static_cast<size_t>(p)]);
    MPI_Request ping = MPI_REQUEST_NULL;
    if (MPI_Isend(&ping_payload_, 1, MPI_INT64_T, p, kPingTag, alive_, &ping) == MPI_SUCCESS) MPI_Request_free(&ping);
  }
  std::vector<bool> answered(n, false);
  answered[static_cast<size_t>(rank_)] = true;
  const Clock::time_point deadline = after(Clock::now(), grace_seconds(timeout_s_));
  while (Clock::now() < deadline && std::find(answered.begin(), answered.end(), false) != answered.end()) {
    for (size_t p = 0; p < n; ++p) {
      if (answered[p]) continue;
      int done = 0;
      if (MPI_Test(&answers[p], &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) answered[p] = true;
    }
    answer_pings();  // ranks that timed out too are pinging us at the same time
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  std::vector<int> silent, out_of_step;
  for (size_t p = 0; p < n; ++p) {
    if (!answered[p]) {
      silent.push_back(static_cast<int>(p));
      MPI_Cancel(&answers[p]);
      MPI_Request_free(&answers[p]);
    } else if (static_cast<int>(p) != rank_ && ping_answers_[p] != sequence_) {
      out_of_step.push_back(static_cast<int>(p));
    }
  }

  const std::string of = " (of " + std::to_string(world_) + ")";
  std::string msg = std::string("mpi: ") + what +
                    (mpi_error.empty() ? " timed out after " + cc::seconds(timeout_s_) : " failed (" + mpi_error + ")");
  if (!silent.empty()) {
    msg += ": no answer from " + cc::rank_list(silent) + of + (silent.size() == 1 ? "; it died or hangs" : "; they died or hang");
  } else {
    msg += " on rank " + std::to_string(rank_) + of + " although every rank answered";
    if (out_of_step.empty() && mpi_error.empty())
      msg += ": all wait in the same collective (#" + std::to_string(sequence_) +
             "), so the transfer itself is too slow for timeout_s (raise it) or the network is stuck";
  }
  if (!out_of_step.empty()) {
    msg += silent.empty() ? ": " : "; ";
    for (size_t i = 0; i < out_of_step.size(); ++i) {
      const int p = out_of_step[i];
      msg += (i ? ", " : "") + std::string("rank ") + std::to_string(p) + " waits in collective #" +
             std::to_string(ping_answers_[static_cast<size_t>(p)]);
    }
    msg += " while rank " + std::to_string(rank_) + " waits in #" + std::to_string(sequence_) +
           ": the ranks called different collectives (a bug in the caller)";
  }
  return msg + ". " + cc::resume_advice();
}

}  // namespace loom::builtin
