#include "loop/loader.h"

#include <ATen/ATen.h>

#include <dlfcn.h>

namespace loom::host {

std::vector<int64_t> micro_batch_sizes(int64_t n, int64_t b) {
  std::vector<int64_t> sizes;
  for (int64_t start = 0; start < n; start += b) sizes.push_back(std::min(b, n - start));
  return sizes;
}

Loader::Loader(const Dataset& dataset, const at::Tensor& labels, const View& view, at::Tensor order, int64_t first_batch,
               LoaderOptions options)
    : dataset_(dataset), labels_(labels), view_(view), order_(std::move(order)), options_(std::move(options)) {
  const int64_t n = order_.size(0);
  std::vector<int64_t> sizes = options_.batch_sizes.empty() ? micro_batch_sizes(n, options_.batch_size) : options_.batch_sizes;
  offsets_.assign(1, 0);
  for (int64_t s : sizes) offsets_.push_back(offsets_.back() + s);
  if (offsets_.back() != n)
    throw std::logic_error("loader: batch sizes cover " + std::to_string(offsets_.back()) + " of " + std::to_string(n) +
                           " positions");
  num_batches_ = static_cast<int64_t>(sizes.size());
  next_make_ = next_take_ = std::min(first_batch, num_batches_);
  if (options_.prefetch > 0) thread_ = std::thread([this] { produce(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Batch Loader::make(int64_t index) const {
  const int64_t start = offsets_[static_cast<size_t>(index)];
  const int64_t size = offsets_[static_cast<size_t>(index) + 1] - start;
  const at::Tensor positions = order_.narrow(0, start, size);
  const at::Tensor indices = view_.indices.index_select(0, positions);
  Batch b;
  b.index = index;
  b.size = size;
  b.x = dataset_.load(indices);
  b.y = view_.targets.defined() ? view_.targets.index_select(0, positions) : labels_.index_select(0, indices);
  if (view_.weights.defined()) b.w = view_.weights.index_select(0, positions).to(at::kFloat);
  if (!b.x.is_cpu() && b.x.device().type() == options_.device.type()) {
    // A cache that keeps the samples on the run's device (the device cache) gathered them there already.
    b.y = b.y.to(options_.device);
    if (b.w.defined()) b.w = b.w.to(options_.device);
  } else if (options_.device.is_cuda()) {
    b.x = b.x.pin_memory().to(options_.device, /*non_blocking=*/true);
    b.y = b.y.pin_memory().to(options_.device, true);
    if (b.w.defined()) b.w = b.w.pin_memory().to(options_.device, true);
  } else if (options_.device != c10::Device(c10::kCPU)) {
    b.x = b.x.to(options_.device);
    b.y = b.y.to(options_.device);
    if (b.w.defined()) b.w = b.w.to(options_.device);
  }
  if (options_.pipeline && size > 0) {
    at::Generator gen = options_.augment_generator(index);
    AugmentBatch batch{b.x, b.y, b.w};
    options_.pipeline->apply(batch, gen);
    b.x = std::move(batch.x), b.y = std::move(batch.y), b.w = std::move(batch.w);
  }
  if (options_.memory_format == at::MemoryFormat::ChannelsLast && b.x.dim() == 4)
    b.x = b.x.contiguous(at::MemoryFormat::ChannelsLast);
  return b;
}

Shard shard_epoch(const at::Tensor& order, const std::vector<int64_t>& global_sizes, int rank, int world) {
  Shard shard;
  std::vector<at::Tensor> parts;
  int64_t start = 0;
  for (int64_t size : global_sizes) {
    const int64_t lo = size * rank / world, hi = size * (rank + 1) / world;
    parts.push_back(order.narrow(0, start + lo, hi - lo));
    shard.sizes.push_back(hi - lo);
    start += size;
  }
  if (start != order.size(0)) throw std::logic_error("shard_epoch: micro-batch sizes do not cover the epoch");
  shard.order = parts.empty() ? order.narrow(0, 0, 0) : at::cat(parts);
  return shard;
}

namespace {

/// Like a PyTorch DataLoader worker, the loader thread gathers with one intra-op thread: the training
/// thread keeps the cores, and a small gather split across busy cores is slower than on one. With
/// LibTorch's OpenMP backend the thread count is a per-thread setting; the symbol is taken from the
/// OpenMP runtime LibTorch already loaded (never a second copy).
void use_one_intra_op_thread() {
  using SetThreads = void (*)(int);
  static const auto set_threads = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set_threads) set_threads(1);
}

}  // namespace

void Loader::produce() {
  use_one_intra_op_thread();
  try {
    for (;;) {
      int64_t index;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || static_cast<int64_t>(queue_.size()) < options_.prefetch; });
        if (stop_ || next_make_ >= num_batches_) break;
        index = next_make_++;
      }
      Batch b = make(index);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(std::move(b));
      }
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
  }
  cv_.notify_all();
}

std::optional<Batch> Loader::next() {
  if (next_take_ >= num_batches_) return std::nullopt;
  if (options_.prefetch == 0) return make(next_take_++);
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return !queue_.empty() || done_; });
  if (queue_.empty()) {
    if (error_) std::rethrow_exception(error_);
    return std::nullopt;
  }
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  ++next_take_;
  lock.unlock();
  cv_.notify_all();
  return b;
}

}  // namespace loom::host
