#include "nccl_communicator.h"

#include "../common/comm_common.h"

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace loom::builtin {

namespace cc = comm_common;

namespace {

ncclDataType_t nccl_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    case at::kInt: return ncclInt32;
    case at::kLong: return ncclInt64;
    case at::kByte: return ncclUint8;
    case at::kChar: return ncclInt8;
    default: throw std::logic_error("nccl: no NCCL type for " + cc::dtype_name(t));  // check_tensors ran first
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Avg: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
  }
  return ncclSum;
}

std::string version_text(int code) {  // NCCL_VERSION_CODE since 2.9: major * 10000 + minor * 100 + patch
  return std::to_string(code / 10000) + "." + std::to_string(code / 100 % 100) + "." + std::to_string(code % 100);
}

std::string host_name() {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

/// c10 errors carry a C++ backtrace in what(); users need the first line.
std::string short_error(const c10::Error& e) { return e.what_without_backtrace(); }

}  // namespace

FeatureInfo NcclCommunicator::info() {
  return {.name = "nccl",
          .version = "1.0.0",
          .summary = "data-parallel ranks on CUDA GPUs through NCCL, one process per GPU, launched torchrun-style",
          .params = {cc::timeout_param(), cc::bucket_mb_param()}};
}

NcclCommunicator::NcclCommunicator(const CreateContext& ctx)
    : logger_(ctx.run.logger()), timeout_s_(ctx.params.real("timeout_s")),
      bucket_bytes_(static_cast<int64_t>(ctx.params.real("bucket_mb") * 1024.0 * 1024.0)),
      launch_(nccl_launch::read_launch([](const char* name) { return std::getenv(name); })) {
  const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(timeout_s_));
  // The header and the library both come from the torch wheel's nvidia-nccl package (see CMakeLists.txt);
  // a different libnccl.so.2 found first (LD_LIBRARY_PATH) would not match the structs we were built with.
  int loaded = 0;
  ncclGetVersion(&loaded);
  if (loaded / 100 != NCCL_VERSION_CODE / 100)
    throw std::runtime_error("nccl: built against NCCL " + version_text(NCCL_VERSION_CODE) +
                             " (the torch wheel's nvidia-nccl package) but this process loaded NCCL " +
                             version_text(loaded) + "; remove other libnccl.so.2 copies from LD_LIBRARY_PATH");
  const c10::DeviceIndex devices = c10::cuda::device_count();
  if (devices == 0)
    throw std::runtime_error("nccl: no CUDA device is visible, and the nccl communicator needs one GPU per rank; "
                             "use [communicator] plugin = \"mpi\" on CPUs");
  if (launch_.local_rank >= devices)
    throw std::runtime_error("nccl: LOCAL_RANK=" + std::to_string(launch_.local_rank) + " but this host shows " +
                             std::to_string(devices) + " CUDA device(s); start at most one rank per GPU "
                             "(torchrun --nproc-per-node " + std::to_string(devices) + ") or check CUDA_VISIBLE_DEVICES");
  device_ = static_cast<c10::DeviceIndex>(launch_.local_rank);
  c10::cuda::set_device(device_);
  connect(deadline);
  barrier_buf_ = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(c10::Device(c10::kCUDA, device_)));
  logger_.info("nccl: rank " + std::to_string(launch_.rank) + " of " + std::to_string(launch_.world_size) +
               " (local " + std::to_string(launch_.local_rank) + " of " + std::to_string(launch_.local_size) +
               ") on host " + host_name() + ", cuda:" + std::to_string(device_) + "; NCCL " + version_text(loaded) +
               "; rendezvous at " + launch_.master_addr + ":" + std::to_string(launch_.master_port) + "; timeout " +
               cc::seconds(timeout_s_) + ", buckets of " + c10::str(ctx.params.real("bucket_mb")) + " MB");
}

void NcclCommunicator::connect(Clock::time_point deadline) {
  const std::string where = launch_.master_addr + ":" + std::to_string(launch_.master_port);
  const std::string& prefix = launch_.key_prefix;
  const std::string me = "rank " + std::to_string(launch_.rank);
  c10d::TCPStoreOptions options;
  options.port = launch_.master_port;
  options.isServer = launch_.rank == 0 && !launch_.agent_store;
  options.numWorkers = static_cast<size_t>(launch_.world_size);
  options.waitWorkers = false;  // we wait for what we need (the id) and name who is missing ourselves
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000.0));
  options.multiTenant = true;  // as torch's own rendezvous: another store on this port in this process is fine
  try {
    store_ = c10::make_intrusive<c10d::TCPStore>(launch_.master_addr, options);
  } catch (const c10::Error& e) {
    throw CommunicatorError(
        "nccl: " + me + (options.isServer ? " cannot serve" : " cannot reach") + " the rendezvous store at " + where +
        " within " + cc::seconds(timeout_s_) + ": " + short_error(e) +
        (options.isServer ? " (is the port in use? pick another MASTER_PORT)"
                          : " (is rank 0 running, and do all ranks use the same MASTER_ADDR and MASTER_PORT?)"));
  }

  ncclUniqueId id;
  try {
    store_->set(prefix + "joined/" + std::to_string(launch_.rank), bytes(host_name()));
    store_->set(prefix + "seq/" + std::to_string(launch_.rank), bytes("0"));
    if (launch_.rank == 0) {
      check(ncclGetUniqueId(&id), "ncclGetUniqueId", "setup");
      store_->set(prefix + "id", std::vector<uint8_t>(id.internal, id.internal + sizeof(id.internal)));
    } else {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      store_->wait({prefix + "id"}, std::max(left, std::chrono::milliseconds(1)));
      const std::vector<uint8_t> value = store_->get(prefix + "id");
      if (value.size() != sizeof(id.internal))
        throw CommunicatorError("nccl: the NCCL id in the store at " + where + " has " + std::to_string(value.size()) +
                                " bytes, expected " + std::to_string(sizeof(id.internal)) +
                                "; is another program using MASTER_PORT " + std::to_string(launch_.master_port) + "?");
      std::memcpy(id.internal, value.data(), value.size());
    }
  } catch (const c10::Error& e) {
    throw CommunicatorError("nccl: " + me + " did not get rank 0's NCCL id from the store at " + where + " within " +
                            cc::seconds(timeout_s_) + " (" + short_error(e) +
                            "); rank 0 did not start, died, or uses another MASTER_ADDR/MASTER_PORT");
  }
  // Later store operations only touch keys that exist (or check for them): a short timeout keeps a
  // diagnosis from waiting as long as the collective did.
  store_->setTimeout(std::chrono::milliseconds(static_cast<int64_t>(std::clamp(timeout_s_ / 20.0, 1.0, 5.0) * 1000.0)));

  // Non-blocking: ncclCommInitRankConfig returns at once and we poll, so missing ranks cannot hang us.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  check(ncclCommInitRankConfig(&comm_, launch_.world_size, id, launch_.rank, &config), "ncclCommInitRankConfig", "setup");
  cc::Backoff backoff;
  for (;;) {
    ncclResult_t state = ncclInProgress;
    check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", "setup");
    check(state, "ncclCommInitRankConfig", "setup");
    if (state == ncclSuccess) return;
    if (Clock::now() >= deadline) break;
    backoff.pause();
  }
  std::vector<int> missing;
  try {
    for (int r = 0; r < launch_.world_size; ++r)
      if (!store_->check({prefix + "joined/" + std::to_string(r)})) missing.push_back(r);
  } catch (const c10::Error&) {
    // The store is gone as well: rank 0 (or torchrun's agent) ended; say what we know.
  }
  abort_nccl();
  failed_ = true;
  const std::string of = " (of " + std::to_string(launch_.world_size) + ")";
  if (!missing.empty())
    throw CommunicatorError("nccl: setup timed out after " + cc::seconds(timeout_s_) + ": " + cc::rank_list(missing) + of +
                            " never joined the rendezvous at " + where +
                            "; they did not start, died, or use another MASTER_ADDR/MASTER_PORT");
  throw CommunicatorError("nccl: setup timed out after " + cc::seconds(timeout_s_) + ": every rank" + of +
                          " joined the rendezvous at " + where + ", but NCCL could not connect them; check the "
                          "network between the hosts (NCCL_SOCKET_IFNAME; NCCL_DEBUG=INFO shows what NCCL tried)");
}

NcclCommunicator::~NcclCommunicator() {
  if (!comm_ || failed_) return;
  // Finalize flushes pending work (non-blocking: poll), then Destroy frees locally; past the timeout, Abort.
  c10::cuda::set_device(device_);
  ncclResult_t state = ncclCommFinalize(comm_);
  const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(timeout_s_));
  cc::Backoff backoff;
  while ((state == ncclSuccess || state == ncclInProgress) && Clock::now() < deadline) {
    if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
    if (state == ncclSuccess) break;
    backoff.pause();
  }
  if (state == ncclSuccess) {
    ncclCommDestroy(comm_);
  } else {
    ncclCommAbort(comm_);
  }
  comm_ = nullptr;
}

void NcclCommunicator::abort_nccl() {
  if (comm_) ncclCommAbort(comm_);
  comm_ = nullptr;
}

void NcclCommunicator::check_usable(const char* what) const {
  if (failed_)
    throw CommunicatorError(std::string("nccl: ") + what + " refused: an earlier collective failed on rank " +
                            std::to_string(launch_.rank) + " and its NCCL communicator is aborted; end the run. " +
                            cc::resume_advice());
}

void NcclCommunicator::check(ncclResult_t r, const char* call, const char* what) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  std::string detail = ncclGetErrorString(r);
  if (comm_) {
    const char* last = ncclGetLastError(comm_);
    if (last && *last) detail += std::string(" (") + last + ")";
  }
  abort_nccl();
  failed_ = true;
  throw CommunicatorError(std::string("nccl: ") + what + ": " + call + " failed on rank " + std::to_string(launch_.rank) +
                          " (of " + std::to_string(launch_.world_size) + "): " + detail +
                          (r == ncclRemoteError ? "; another rank failed" : "") + ". " + cc::resume_advice());
}

void NcclCommunicator::enter(const char* what) {
  ++sequence_;
  if (launch_.world_size == 1) return;
  try {
    store_->set(launch_.key_prefix + "seq/" + std::to_string(launch_.rank), bytes(std::to_string(sequence_)));
  } catch (const c10::Error& e) {
    abort_nccl();
    failed_ = true;
    throw CommunicatorError(std::string("nccl: ") + what + ": the rendezvous store at " + launch_.master_addr + ":" +
                            std::to_string(launch_.master_port) + " is unreachable (" + short_error(e) +
                            "): rank 0, which serves it, died or ended. " + cc::resume_advice());
  }
}

std::string NcclCommunicator::abort_reason_from_store() {
  try {
    const std::string key = launch_.key_prefix + "abort";
    if (store_->check({key})) return text(store_->get(key));
  } catch (const c10::Error&) {
  }
  return "";
}

void NcclCommunicator::wait(const char* what, Clock::time_point deadline) {
  const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(device_);
  Clock::time_point next_store_check = Clock::now() + std::chrono::seconds(1);
  cc::Backoff backoff;
  for (;;) {
    ncclResult_t state = ncclInProgress;
    check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", what);
    check(state, "a queued NCCL operation", what);
    // While NCCL still reports ncclInProgress it may not have queued the kernels yet: only then is an idle
    // stream proof that the collective ran.
    if (state == ncclSuccess && stream.query()) return;
    const Clock::time_point now = Clock::now();
    if (launch_.world_size > 1 && now >= next_store_check) {
      if (std::string reason = abort_reason_from_store(); !reason.empty()) {
        abort_nccl();
        failed_ = true;
        throw CommunicatorError(std::string("nccl: ") + what + " stopped because " + reason + ". " + cc::resume_advice());
      }
      next_store_check = now + std::chrono::seconds(1);
    }
    if (now >= deadline) {
      std::string message = diagnose_timeout(what);
      abort_nccl();
      failed_ = true;
      throw CommunicatorError(message);
    }
    backoff.pause();
  }
}

std::string NcclCommunicator::diagnose_timeout(const char* what) {
  const std::string of = " (of " + std::to_string(launch_.world_size) + ")";
  std::string msg = std::string("nccl: ") + what + " (collective #" + std::to_string(sequence_) + ") timed out after " +
                    cc::seconds(timeout_s_) + " on rank " + std::to_string(launch_.rank) + of;
  if (launch_.world_size == 1) return msg + ": the GPU did not finish the queued work (a hung kernel?). " + cc::resume_advice();
  std::vector<std::string> keys;
  for (int r = 0; r < launch_.world_size; ++r) keys.push_back(launch_.key_prefix + "seq/" + std::to_string(r));
  try {
    const std::vector<std::vector<uint8_t>> values = store_->multiGet(keys);
    std::vector<int> behind, ahead;
    std::string where_behind;
    for (int r = 0; r < launch_.world_size; ++r) {
      const int64_t at = std::stoll(text(values[static_cast<size_t>(r)]));
      if (at < sequence_) {
        behind.push_back(r);
        where_behind += std::string(where_behind.empty() ? "" : ", ") + "rank " + std::to_string(r) + " at #" + std::to_string(at);
      }
      if (at > sequence_) ahead.push_back(r);
    }
    if (!behind.empty())
      msg += ": no answer from " + cc::rank_list(behind) + of + ", still at an earlier collective (" + where_behind +
             (behind.size() == 1 ? "); it died or hangs" : "); they died or hang");
    else if (!ahead.empty())
      msg += ": " + cc::rank_list(ahead) + " already passed it: the ranks called different collectives (a bug in the caller)";
    else
      msg += ": every rank entered it, so one died inside it or the network between the GPUs is stuck "
             "(NCCL_DEBUG=INFO shows more)";
  } catch (const std::exception&) {
    msg += ": the rendezvous store at " + launch_.master_addr + ":" + std::to_string(launch_.master_port) +
           " does not answer either, so rank 0 (which serves it) died or hangs";
  }
  return msg + ". " + cc::resume_advice();
}

void NcclCommunicator::all_reduce(const std::vector<at::Tensor>& tensors, ReduceOp op) {
  check_usable("all_reduce");
  const cc::TensorRequirements req{
      .device_type = c10::DeviceType::CUDA,
      .index = device_,
      .dtypes = {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kInt, at::kLong, at::kByte, at::kChar},
      .device_hint = " (this rank's GPU; the nccl communicator reduces CUDA tensors, use mpi for CPU tensors)"};
  cc::check_tensors("nccl: all_reduce", tensors, req);
  if (op == ReduceOp::Avg) {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (!at::isFloatingType(tensors[i].scalar_type()))
        throw std::invalid_argument("nccl: all_reduce: Avg of tensor " + std::to_string(i) + " (" +
                                    cc::dtype_name(tensors[i].scalar_type()) +
                                    ") would truncate; average floating-point tensors, or Sum integers and divide");
  }
  reduce("all_reduce", tensors, op);
}

void NcclCommunicator::reduce(const char* what, const std::vector<at::Tensor>& tensors, ReduceOp op) {
  const std::vector<cc::FlatGroup> groups = cc::pack(tensors, bucket_bytes_, /*copy_in=*/true);
  enter(what);
  const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(timeout_s_));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device_).stream();
  check(ncclGroupStart(), "ncclGroupStart", what);
  for (const cc::FlatGroup& g : groups)
    for (const cc::Bucket& b : g.buckets)
      check(ncclAllReduce(g.data(b), g.data(b), static_cast<size_t>(b.count), nccl_type(g.dtype), nccl_op(op), comm_, stream),
            "ncclAllReduce", what);
  check(ncclGroupEnd(), "ncclGroupEnd", what);
  wait(what, deadline);
  for (const cc::FlatGroup& g : groups) g.unpack();
}

void NcclCommunicator::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  check_usable("broadcast");
  const cc::TensorRequirements req{
      .device_type = c10::DeviceType::CUDA,
      .index = device_,
      .dtypes = {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kInt, at::kLong, at::kByte, at::kChar, at::kBool},
      .device_hint = " (this rank's GPU; the nccl communicator works on CUDA tensors, use mpi for CPU tensors)"};
  cc::check_tensors("nccl: broadcast", tensors, req);
  if (root < 0 || root >= launch_.world_size)
    throw std::invalid_argument("nccl: broadcast: root " + std::to_string(root) + " is not a rank (world size " +
                                std::to_string(launch_.world_size) + ")");
  const std::vector<cc::FlatGroup> groups = cc::pack(tensors, bucket_bytes_, /*copy_in=*/launch_.rank == root);
  enter("broadcast");
  const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(timeout_s_));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device_).stream();
  check(ncclGroupStart(), "ncclGroupStart", "broadcast");
  for (const cc::FlatGroup& g : groups) {
    // A broadcast only moves bytes: bool (1 byte) travels as uint8.
    const ncclDataType_t type = g.dtype == at::kBool ? ncclUint8 : nccl_type(g.dtype);
    for (const cc::Bucket& b : g.buckets)
      check(ncclBroadcast(g.data(b), g.data(b), static_cast<size_t>(b.count), type, root, comm_, stream), "ncclBroadcast",
            "broadcast");
  }
  check(ncclGroupEnd(), "ncclGroupEnd", "broadcast");
  wait("broadcast", deadline);
  if (launch_.rank != root)
    for (const cc::FlatGroup& g : groups) g.unpack();
}

void NcclCommunicator::barrier() {
  check_usable("barrier");
  reduce("barrier", {barrier_buf_}, ReduceOp::Sum);
}

void NcclCommunicator::abort(const std::string& reason) {
  if (launch_.world_size > 1 && store_) {
    try {
      store_->set(launch_.key_prefix + "abort", bytes("rank " + std::to_string(launch_.rank) + " failed: " + reason));
    } catch (const c10::Error&) {
      // Best effort: the others still stop at their timeout.
    }
  }
  logger_.warn("nccl: rank " + std::to_string(launch_.rank) + " aborts its NCCL communicator; the other ranks stop "
               "within a second");
  abort_nccl();
  failed_ = true;
}

}  // namespace loom::builtin
