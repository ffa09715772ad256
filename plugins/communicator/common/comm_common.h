// Pieces shared by the built-in communicators (mpi, nccl). Header-only: each plugin includes it by relative
// path ("../common/comm_common.h"); nothing here is exported or linked.
//
//   timeout_param(), bucket_mb_param()   the common schema entries, so both plugins document them alike
//   dtype_name()        "float32", "int64", … as users write them
//   check_tensors()     validates a collective's tensors before anything is issued, so a bad call fails on
//                       every rank alike instead of leaving the others waiting in a half-issued collective
//   FlatGroup, pack()   tensors grouped by dtype, flattened into one buffer, cut into buckets
//   Backoff             the pace of a loop that polls a pending collective
//   rank_list()         "rank 1" / "ranks 1, 3"
#pragma once

#include <loom/params.h>

#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <c10/util/StringUtil.h>

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace loom::builtin::comm_common {

inline ParamSpec timeout_param() {
  return ParamSpec::real("timeout_s", 300.0).at_least(0.001)
      .doc("seconds a collective may wait for the other ranks; then it fails with an error naming the ranks "
           "that did not answer (they died or hang) instead of waiting forever");
}

inline ParamSpec bucket_mb_param() {
  return ParamSpec::real("bucket_mb", 25.0).range(0.001, 1024.0)
      .doc("tensors are flattened into buckets of at most this many MB (2^20 bytes), one collective call each");
}

inline std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

inline std::string join_dtypes(const std::vector<at::ScalarType>& types) {
  std::string s;
  for (at::ScalarType t : types) s += (s.empty() ? "" : ", ") + dtype_name(t);
  return s;
}

/// What a communicator accepts. `index` set: tensors must be on exactly that device (nccl: the rank's GPU).
struct TensorRequirements {
  c10::DeviceType device_type = c10::DeviceType::CPU;
  std::optional<c10::DeviceIndex> index;
  std::vector<at::ScalarType> dtypes;
  std::string device_hint;  ///< appended to a wrong-device error: what to use instead
};

/// Throws std::invalid_argument naming the first offending tensor. `what` prefixes the message
/// ("mpi: all_reduce").
inline void check_tensors(std::string_view what, const std::vector<at::Tensor>& tensors, const TensorRequirements& req) {
  const std::string n = std::to_string(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    const std::string which = std::string(what) + ": tensor " + std::to_string(i) + " of " + n;
    if (!t.defined()) throw std::invalid_argument(which + " is undefined (pass only tensors that hold data)");
    const c10::Device d = t.device();
    if (d.type() != req.device_type || (req.index && d.index() != *req.index)) {
      const std::string want = req.index ? c10::Device(req.device_type, *req.index).str()
                                         : c10::DeviceTypeName(req.device_type, /*lower_case=*/true);
      throw std::invalid_argument(which + " is on " + d.str() + ", expected " + want + req.device_hint);
    }
    if (!t.is_contiguous())
      throw std::invalid_argument(which + " (shape " + c10::str(t.sizes()) +
                                  ") is not contiguous; pass contiguous tensors (collectives work in place on their "
                                  "memory), e.g. t.contiguous() kept in a variable");
    if (std::find(req.dtypes.begin(), req.dtypes.end(), t.scalar_type()) == req.dtypes.end())
      throw std::invalid_argument(which + " has dtype " + dtype_name(t.scalar_type()) + "; supported: " +
                                  join_dtypes(req.dtypes));
  }
}

/// A slice of a FlatGroup's buffer that one collective call handles.
struct Bucket {
  int64_t offset = 0;  ///< in elements
  int64_t count = 0;
};

/// The tensors of one dtype, in the caller's order, as one flat 1-D buffer cut into buckets.
struct FlatGroup {
  at::ScalarType dtype = at::kFloat;
  std::vector<at::Tensor> members;
  at::Tensor flat;
  bool aliased = false;  ///< flat is the only member's own memory (no copy in or out)
  std::vector<Bucket> buckets;

  void* data(const Bucket& b) const {
    return static_cast<char*>(flat.data_ptr()) + b.offset * static_cast<int64_t>(flat.element_size());
  }
  /// Copies the buffer back into the members (nothing to do when aliased).
  void unpack() const {
    if (aliased) return;
    int64_t offset = 0;
    for (const at::Tensor& t : members) {
      const int64_t n = t.numel();
      if (n) t.view({-1}).copy_(flat.narrow(0, offset, n));
      offset += n;
    }
  }
};

/// Groups `tensors` by dtype (in order of first appearance, so every rank builds the same groups from the
/// same list) and flattens each group into buckets of at most `bucket_bytes` (a tensor may span two).
/// `copy_in` false: the buffer's contents are left uninitialised (a broadcast's receivers).
inline std::vector<FlatGroup> pack(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, bool copy_in) {
  std::vector<FlatGroup> groups;
  for (const at::Tensor& t : tensors) {
    auto g = std::find_if(groups.begin(), groups.end(), [&](const FlatGroup& f) { return f.dtype == t.scalar_type(); });
    if (g == groups.end()) g = groups.insert(groups.end(), FlatGroup{.dtype = t.scalar_type()});
    g->members.push_back(t);
  }
  for (FlatGroup& g : groups) {
    int64_t total = 0;
    for (const at::Tensor& t : g.members) total += t.numel();
    if (g.members.size() == 1) {
      g.flat = g.members[0].view({-1});
      g.aliased = true;
    } else if (copy_in) {
      std::vector<at::Tensor> views;
      views.reserve(g.members.size());
      for (const at::Tensor& t : g.members) views.push_back(t.view({-1}));
      g.flat = at::cat(views);
    } else {
      g.flat = at::empty({total}, g.members[0].options());
    }
    const int64_t per_bucket = std::max<int64_t>(1, bucket_bytes / static_cast<int64_t>(g.flat.element_size()));
    for (int64_t off = 0; off < total; off += per_bucket) g.buckets.push_back({off, std::min(per_bucket, total - off)});
  }
  return groups;
}

/// Paces a loop that polls a pending collective. For the first second it only yields the core: a
/// collective whose peers are all present needs a progress call per message fragment (sleeping 200 µs
/// between polls made a 25 MB MPI all-reduce three times slower on a 2-core machine). After a second
/// somebody is late, and a poll every 100 µs keeps a waiting rank from burning a core for minutes.
class Backoff {
 public:
  void pause() {
    if (std::chrono::steady_clock::now() - start_ < std::chrono::seconds(1)) {
      sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// "rank 1", "ranks 1, 3".
inline std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

/// Seconds as a user reads them: "5 s", "0.5 s".
inline std::string seconds(double s) {
  std::string text = c10::str(s);
  return text + " s";
}

/// The advice every timeout message ends with.
inline std::string resume_advice() {
  return "The last checkpoint is intact; fix the cause and resume with `loom run --resume RUN_DIR` on the same "
         "number of ranks";
}

}  // namespace loom::builtin::comm_common
