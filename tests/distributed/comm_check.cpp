// comm_check: one process of a multi-process check of a communicator plugin, created by its registry name
// through the host's Registry from the build's plugin directory (as `loom run` does). Start it under a
// launcher, e.g. with tests/distributed/mpirun.sh:
//
//   tests/distributed/mpirun.sh -np 2 build/tests/comm_check all-reduce --set bucket_mb=0.05
//
// Modes (every rank runs the same one; each prints "comm_check MODE: rank R of N passed" or "FAIL: …" and
// exits 0 or 1; the timeout modes print "comm_check MODE: PASS" on rank 0, then end the job by abort()):
//   info           rank, world size, local rank/size agree with the launcher's variables; ranks distinct
//   all-reduce     Sum, Avg and Max over tensors of four dtypes and many sizes (several buckets: use a small
//                  bucket_mb), against the expected values every rank computes for all ranks
//   broadcast      from rank 0 and from the last rank, mixed dtypes
//   barrier        nobody leaves a barrier before the last rank arrived (ranks arrive at different times)
//   errors         bad calls (non-contiguous, wrong dtype or device, Avg of integers, bad root) throw clear
//                  errors on every rank, and the communicator still works afterwards
//   all            info, all-reduce, broadcast, barrier and errors in one process (one start-up, e.g. on a GPU)
//   timeout-hang   the last rank sleeps instead of joining an all-reduce: the others throw CommunicatorError
//                  naming it, within timeout_s plus the grace period
//   timeout-exit   the same with a last rank that exits (needs `mpirun --enable-recovery`, else mpirun ends
//                  the job itself)
//   abort          the last rank calls abort() while the others wait in an all-reduce: the job ends at once
//                  (well before timeout_s; the ctest entry's own timeout checks that)
//   bandwidth      all-reduce (Avg) time and GB/s of one large bucket (--mb, default 256) and of the same bytes
//                  as 64 tensors (the flattening path), --iters times (default 10); on the communicator's device
//
// Options: --plugin NAME (default mpi), --set PARAM=VALUE (the plugin's params, e.g. timeout_s=2),
//          --plugin-dir DIR (default: this build's plugins), --mb N, --iters N.
#include "test_paths.h"

#include "cli/log.h"
#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <loom/communicator.h>

#include <torch/torch.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using loom::Communicator;
using loom::CommunicatorError;
using loom::ReduceOp;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  std::string plugin = "mpi";
  std::string plugin_dir = LOOM_TEST_PLUGIN_DIR;
  std::map<std::string, std::string> sets;
  int64_t mb = 256;
  int iters = 10;
};

/// A failed check: the message says what was expected and what came.
struct CheckFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void expect(bool ok, const std::string& what) {
  if (!ok) throw CheckFailed(what);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--plugin") o.plugin = value();
    else if (a == "--plugin-dir") o.plugin_dir = value();
    else if (a == "--mb") o.mb = std::stoll(value());
    else if (a == "--iters") o.iters = std::stoi(value());
    else if (a == "--set") {
      const std::string kv = value();
      const auto eq = kv.find('=');
      if (eq == std::string::npos) throw std::invalid_argument("--set expects PARAM=VALUE, got " + kv);
      o.sets[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (o.mode.empty() && a.rfind("--", 0) != 0) o.mode = a;
    else throw std::invalid_argument("unknown argument " + a);
  }
  if (o.mode.empty()) throw std::invalid_argument("usage: comm_check MODE [--plugin NAME] [--set PARAM=VALUE]...");
  return o;
}

/// The plugin's schema defaults with --set values on top (typed by the schema).
loom::Params make_params(const loom::Schema& schema, const std::map<std::string, std::string>& sets) {
  std::map<std::string, loom::Value> values;
  for (const loom::ParamSpec& spec : schema)
    if (spec.default_value) values[spec.name] = *spec.default_value;
  for (const auto& [name, text] : sets) {
    auto spec = std::find_if(schema.begin(), schema.end(), [&](const loom::ParamSpec& s) { return s.name == name; });
    if (spec == schema.end()) throw std::invalid_argument("the plugin has no parameter '" + name + "'");
    switch (spec->type) {
      case loom::ParamType::Int: values[name] = static_cast<int64_t>(std::stoll(text)); break;
      case loom::ParamType::Float: values[name] = std::stod(text); break;
      case loom::ParamType::Bool: values[name] = text == "true"; break;
      default: values[name] = text; break;
    }
  }
  return loom::Params(values);
}

std::optional<int> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::stoi(v);
}

class Check {
 public:
  Check(std::shared_ptr<Communicator> comm, const Options& o, const loom::Params& params)
      : comm_(std::move(comm)), o_(o), params_(params), rank_(comm_->rank()), world_(comm_->world_size()),
        device_(comm_->device_type() == c10::DeviceType::CUDA
                    ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(comm_->local_rank()))
                    : c10::Device(c10::kCPU)) {}

  /// Runs the mode; throws CheckFailed (or the communicator's error) when this rank did not pass.
  void run() {
    const std::string& m = o_.mode;
    if (m == "all") {
      info();
      all_reduce();
      broadcast();
      barrier();
      errors();
    } else if (m == "info") info();
    else if (m == "all-reduce") all_reduce();
    else if (m == "broadcast") broadcast();
    else if (m == "barrier") barrier();
    else if (m == "errors") errors();
    else if (m == "timeout-hang" || m == "timeout-exit") timeout(m == "timeout-exit");
    else if (m == "abort") abort_job();
    else if (m == "bandwidth") bandwidth();
    else throw std::invalid_argument("unknown mode " + m);
  }

 private:
  at::TensorOptions opts(at::ScalarType t) const { return at::TensorOptions().dtype(t).device(device_); }

  void info() {
    expect(world_ >= 1 && rank_ >= 0 && rank_ < world_, "rank " + std::to_string(rank_) + " of " + std::to_string(world_));
    expect(comm_->local_rank() >= 0 && comm_->local_rank() < comm_->local_size() && comm_->local_size() <= world_,
           "local rank " + std::to_string(comm_->local_rank()) + " of " + std::to_string(comm_->local_size()));
    const std::pair<const char*, int> launcher[] = {{"OMPI_COMM_WORLD_SIZE", world_},
                                                    {"OMPI_COMM_WORLD_RANK", rank_},
                                                    {"OMPI_COMM_WORLD_LOCAL_RANK", comm_->local_rank()},
                                                    {"OMPI_COMM_WORLD_LOCAL_SIZE", comm_->local_size()},
                                                    {"WORLD_SIZE", world_},
                                                    {"RANK", rank_}};
    for (const auto& [var, got] : launcher)
      if (auto want = env_int(var)) expect(*want == got, std::string(var) + "=" + std::to_string(*want) + " but the communicator says " + std::to_string(got));
    expect(comm_->device_type() == (o_.plugin == "nccl" ? c10::DeviceType::CUDA : c10::DeviceType::CPU), "device type");
    // Distinct ranks: the sum of one-hot rows is all ones.
    at::Tensor onehot = at::zeros({world_}, opts(at::kLong));
    onehot[rank_] = 1;
    comm_->all_reduce({onehot}, ReduceOp::Sum);
    expect(at::equal(onehot.cpu(), at::ones({world_}, at::kLong)), "ranks are not distinct: " + c10::str(onehot.cpu()));
  }

  /// Tensor k of rank r: small integers (exact in every dtype), negative and positive, so Sum, Avg and Max all
  /// depend on every rank.
  static at::Tensor pattern(int r, int k, at::IntArrayRef shape, at::ScalarType t) {
    const int64_t n = c10::multiply_integers(shape);
    at::Tensor i = at::arange(n, at::kLong);
    return ((i * 7 + k * 3 + r * 5) % 13 - 6).to(t).reshape(shape);
  }

  void all_reduce() {
    struct Spec {
      std::vector<int64_t> shape;
      at::ScalarType dtype;
    };
    // Interleaved dtypes; float32 and float64 groups hold several tensors (flattened), int32 and int64 one
    // each (reduced in place); the large ones span several buckets when bucket_mb is small.
    const std::vector<Spec> specs = {{{70000}, at::kFloat},  {{3, 5, 7}, at::kLong}, {{1}, at::kDouble},
                                     {{40000}, at::kInt},    {{0}, at::kFloat},      {{256, 33}, at::kFloat},
                                     {{9000}, at::kDouble},  {{2, 2}, at::kFloat}};
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max}) {
      const char* name = op == ReduceOp::Sum ? "Sum" : op == ReduceOp::Avg ? "Avg" : "Max";
      std::vector<at::Tensor> mine, expected;
      for (size_t k = 0; k < specs.size(); ++k) {
        const Spec& s = specs[k];
        if (op == ReduceOp::Avg && !at::isFloatingType(s.dtype)) continue;
        mine.push_back(pattern(rank_, static_cast<int>(k), s.shape, s.dtype).to(device_));
        std::vector<at::Tensor> all;
        for (int r = 0; r < world_; ++r) all.push_back(pattern(r, static_cast<int>(k), s.shape, at::kDouble));
        at::Tensor stacked = at::stack(all);
        at::Tensor e = op == ReduceOp::Max ? std::get<0>(stacked.max(0)) : stacked.sum(0);
        if (op == ReduceOp::Avg) e = e / world_;
        expected.push_back(e.to(s.dtype));
      }
      comm_->all_reduce(mine, op);
      for (size_t k = 0; k < mine.size(); ++k) {
        const at::Tensor got = mine[k].cpu();
        const bool ok = op == ReduceOp::Avg ? at::allclose(got.to(at::kDouble), expected[k].to(at::kDouble), 1e-6, 0)
                                            : at::equal(got, expected[k]);
        expect(ok && got.sizes() == expected[k].sizes(),
               std::string(name) + " of tensor " + std::to_string(k) + " (" + c10::toString(got.scalar_type()) + " " +
                   c10::str(got.sizes()) + "): max abs difference " +
                   (got.numel() ? c10::str((got.to(at::kDouble) - expected[k].to(at::kDouble)).abs().max().item<double>()) : "n/a"));
      }
      std::cout << "[rank " << rank_ << "] all_reduce " << name << " over " << mine.size() << " tensors ok\n";
    }
  }

  void broadcast() {
    for (int root : {0, world_ - 1}) {
      std::vector<at::Tensor> mine, expected;
      const std::vector<std::pair<int64_t, at::ScalarType>> specs = {
          {50000, at::kFloat}, {17, at::kLong}, {3000, at::kDouble}, {20000, at::kInt}, {1, at::kFloat}};
      for (size_t k = 0; k < specs.size(); ++k) {
        mine.push_back(pattern(rank_, static_cast<int>(k), {specs[k].first}, specs[k].second).to(device_));
        expected.push_back(pattern(root, static_cast<int>(k), {specs[k].first}, specs[k].second));
      }
      comm_->broadcast(mine, root);
      for (size_t k = 0; k < mine.size(); ++k)
        expect(at::equal(mine[k].cpu(), expected[k]), "broadcast from rank " + std::to_string(root) + ": tensor " +
                                                          std::to_string(k) + " differs from the root's");
      std::cout << "[rank " << rank_ << "] broadcast from rank " << root << " ok\n";
    }
  }

  void barrier() {
    auto wall = [] { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); };
    for (int round = 0; round < 5; ++round) {
      // A different rank arrives last every round.
      const int late = round % world_;
      std::this_thread::sleep_for(std::chrono::milliseconds(rank_ == late ? 300 : 0));
      const double arrived = wall();
      comm_->barrier();
      const double left = wall();
      at::Tensor latest = at::full({1}, arrived, opts(at::kDouble));
      comm_->all_reduce({latest}, ReduceOp::Max);
      const double last_arrival = latest.cpu().item<double>();
      expect(left >= last_arrival, "round " + std::to_string(round) + ": left the barrier " +
                                       std::to_string(last_arrival - left) + " s before rank " + std::to_string(late) +
                                       " arrived");
    }
    std::cout << "[rank " << rank_ << "] 5 barriers ok\n";
  }

  /// Runs `call`, which must throw an exception whose message contains every one of `needles`.
  template <class F>
  void expect_error(const std::string& what, F call, std::initializer_list<const char*> needles) {
    try {
      call();
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      for (const char* n : needles)
        expect(msg.find(n) != std::string::npos, what + ": the error does not mention \"" + n + "\": " + msg);
      std::cout << "[rank " << rank_ << "] " << what << " -> " << msg << "\n";
      return;
    }
    throw CheckFailed(what + ": no error");
  }

  void errors() {
    const std::string p = o_.plugin + ": ";
    at::Tensor good = at::ones({8}, opts(at::kFloat));
    at::Tensor strided = at::ones({4, 6}, opts(at::kFloat)).t();
    expect_error("non-contiguous", [&] { comm_->all_reduce({good, strided}, ReduceOp::Sum); },
                 {"all_reduce", "tensor 1 of 2", "not contiguous"});
    expect_error("unsupported dtype", [&] { comm_->all_reduce({at::ones({3}, opts(at::kBool))}, ReduceOp::Sum); },
                 {"tensor 0 of 1", "dtype bool", "supported: float32"});
    expect_error("wrong device", [&] { comm_->broadcast({good, at::empty({2}, at::TensorOptions().device(at::kMeta))}, 0); },
                 {"broadcast", "tensor 1 of 2", "is on meta"});
    expect_error("Avg of integers", [&] { comm_->all_reduce({at::ones({3}, opts(at::kLong))}, ReduceOp::Avg); },
                 {"Avg", "int64", "truncate"});
    expect_error("bad root", [&] { comm_->broadcast({good}, world_); }, {"root", "not a rank"});
    // Nothing was issued by the bad calls: a collective still pairs up across the ranks.
    comm_->all_reduce({good}, ReduceOp::Sum);
    expect(at::equal(good.cpu(), at::full({8}, static_cast<float>(world_))), "all_reduce after the errors");
  }

  void timeout(bool exit_instead) {
    expect(world_ >= 2, "the timeout checks need at least 2 ranks");
    const int silent = world_ - 1;
    const double timeout_s = params_.real("timeout_s");
    if (rank_ == silent) {
      if (exit_instead) {
        std::cout << "[rank " << rank_ << "] exits without a word" << std::endl;
        ::_exit(0);
      }
      std::cout << "[rank " << rank_ << "] sleeps instead of joining the all_reduce" << std::endl;
      std::this_thread::sleep_for(std::chrono::duration<double>(timeout_s + 15));
      ::_exit(0);  // normally ended earlier by rank 0's abort()
    }
    at::Tensor t = at::ones({1000}, opts(at::kFloat));
    const auto start = Clock::now();
    try {
      comm_->all_reduce({t}, ReduceOp::Sum);
    } catch (const CommunicatorError& e) {
      const double took = std::chrono::duration<double>(Clock::now() - start).count();
      const std::string msg = e.what();
      std::cout << "[rank " << rank_ << "] after " << took << " s: " << msg << std::endl;
      const std::string who = "rank " + std::to_string(silent) + " (of " + std::to_string(world_) + ")";
      expect(msg.find("all_reduce") != std::string::npos && msg.find("timed out") != std::string::npos &&
                 msg.find(who) != std::string::npos && msg.find("--resume") != std::string::npos,
             "the error names neither the collective, the timeout, " + who + " nor the way out: " + msg);
      // timeout_s, then a grace period of at most 5 s for the pings.
      expect(took >= timeout_s * 0.99 && took <= timeout_s + 6.0,
             "threw after " + std::to_string(took) + " s, timeout_s is " + std::to_string(timeout_s));
      // Later calls fail at once instead of pairing with the pending one.
      try {
        comm_->barrier();
        throw CheckFailed("a barrier after the timeout did not throw");
      } catch (const CommunicatorError& later) {
        expect(std::string(later.what()).find("refused") != std::string::npos, std::string("later call: ") + later.what());
      }
      if (rank_ == 0) std::cout << "comm_check " << o_.mode << ": PASS" << std::endl;
      comm_->abort("comm_check " + o_.mode + " finished");  // as the host does after an error: ends every rank
      return;
    }
    throw CheckFailed("the all_reduce without rank " + std::to_string(silent) + " returned");
  }

  void abort_job() {
    expect(world_ >= 2, "the abort check needs at least 2 ranks");
    if (rank_ == world_ - 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the others are waiting by now
      std::cout << "comm_check abort: rank " << rank_ << " calls abort()" << std::endl;
      comm_->abort("comm_check abort: rank " + std::to_string(rank_) + " gives up");
      throw CheckFailed("abort() returned");
    }
    at::Tensor t = at::ones({1000}, opts(at::kFloat));
    comm_->all_reduce({t}, ReduceOp::Sum);  // never completes: the job ends inside it
    throw CheckFailed("the all_reduce completed although the last rank aborted");
  }

  void bandwidth() {
    const int64_t bytes = o_.mb << 20, n = bytes / 4;
    auto time_it = [&](const std::vector<at::Tensor>& tensors, const std::string& label) {
      for (int i = 0; i < 2; ++i) comm_->all_reduce(tensors, ReduceOp::Avg);  // warm-up: connections, buffers
      comm_->barrier();
      const auto start = Clock::now();
      for (int i = 0; i < o_.iters; ++i) comm_->all_reduce(tensors, ReduceOp::Avg);
      const double s = std::chrono::duration<double>(Clock::now() - start).count() / o_.iters;
      for (const at::Tensor& t : tensors)
        expect(at::equal(t.cpu(), at::ones_like(t.cpu())), label + ": Avg of ones is not ones");
      const double algbw = static_cast<double>(bytes) / s / 1e9;
      const double busbw = algbw * 2.0 * (world_ - 1) / world_;  // what each link carried (ring all-reduce)
      if (rank_ == 0)
        std::printf("bandwidth %s: %s, %d rank(s), %lld MB %s: %.3f ms per all_reduce, %.2f GB/s algbw, %.2f GB/s busbw\n",
                    o_.plugin.c_str(), device_.str().c_str(), world_, static_cast<long long>(o_.mb), label.c_str(),
                    s * 1e3, algbw, busbw);
    };
    time_it({at::ones({n}, opts(at::kFloat))}, "in 1 tensor");
    std::vector<at::Tensor> parts;
    for (int i = 0; i < 64; ++i) parts.push_back(at::ones({n / 64}, opts(at::kFloat)));
    time_it(parts, "in 64 tensors");
    std::fflush(stdout);
  }

  std::shared_ptr<Communicator> comm_;
  const Options& o_;
  const loom::Params& params_;
  int rank_, world_;
  c10::Device device_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "comm_check: " << e.what() << "\n";
    return 2;
  }
  at::set_num_threads(1);
  loom::host::HostLogger logger;
  loom::host::Registry registry;
  const std::string file = o.plugin_dir + "/libloom_communicator_" + o.plugin + ".so";
  if (!registry.load(file)) {
    std::cerr << "FAIL: " << file << ": " << (registry.failures().empty() ? "not loaded" : registry.failures()[0].reason) << "\n";
    return 1;
  }
  const loom::host::Feature* feature = registry.find(loom::Kind::Communicator, o.plugin);
  if (!feature) {
    std::cerr << "FAIL: " << file << " registers no communicator '" << o.plugin << "'\n";
    return 1;
  }
  int rank = -1;
  try {
    const loom::Params params = make_params(feature->info.params, o.sets);
    loom::host::HostRunContext context(logger, c10::Device(c10::kCPU), 0, 1, {}, std::filesystem::temp_directory_path());
    auto comm = registry.create<Communicator>(*feature, loom::CreateContext{params, context, nullptr});
    rank = comm->rank();
    Check(comm, o, params).run();
    std::cout << "comm_check " << o.mode << ": rank " << rank << " of " << comm->world_size() << " passed" << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cout << "FAIL: comm_check " << o.mode << " on rank " << rank << ": " << e.what() << std::endl;
    return 1;
  }
}
