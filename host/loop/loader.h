// The training/eval loader: batches of a View, gathered batch-wise through Dataset::load (a cache makes
// that an index_select), augmented after the cache, prepared ahead on a background thread into a bounded
// queue, pinned and copied asynchronously when the device is CUDA.
#pragma once

#include "loop/augment_pipelines.h"

#include <loom/dataset.h>
#include <loom/self_training.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace loom::host {

struct Batch {
  int64_t index = 0;     ///< micro-batch index within the epoch
  int64_t size = 0;
  at::Tensor x, y, w;    ///< inputs; targets (int64 [B] or float [B,C]); weights (float [B] or undefined)
};

struct LoaderOptions {
  int64_t batch_size = 128;
  /// When set: batch i has batch_sizes[i] samples (possibly 0), consecutive in `order`; overrides batch_size.
  /// A data-parallel rank's shard has uneven (and in the tail, empty) micro-batches.
  std::vector<int64_t> batch_sizes;
  int64_t prefetch = 2;          ///< 0: load on the caller's thread
  /// Applied to every training batch after the copy to the device; nullptr: no augmentation.
  const AugmentPipeline* pipeline = nullptr;
  c10::Device device = c10::kCPU;
  /// ChannelsLast: 4-D inputs are converted once per batch, after augmentation (what the precision
  /// plugin's prepare() returned for the model: ModelBook::Entry::input_format).
  at::MemoryFormat memory_format = at::MemoryFormat::Contiguous;
  /// Generator for the augmentation of micro-batch i: derived per batch, so prefetching ahead or resuming
  /// mid-epoch never changes which random numbers a batch gets.
  std::function<at::Generator(int64_t)> augment_generator;
};

class Loader {
 public:
  /// Serves micro-batches `first_batch`, … of `order` (positions into view.indices).
  Loader(const Dataset& dataset, const at::Tensor& labels, const View& view, at::Tensor order, int64_t first_batch,
         LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// The next micro-batch, or nullopt at the end. Rethrows a failure of the background thread.
  std::optional<Batch> next();
  int64_t num_batches() const { return num_batches_; }

 private:
  Batch make(int64_t index) const;
  void produce();

  const Dataset& dataset_;
  at::Tensor labels_;
  View view_;
  at::Tensor order_;
  LoaderOptions options_;
  int64_t num_batches_ = 0, next_make_ = 0, next_take_ = 0;
  std::vector<int64_t> offsets_;  ///< offsets_[i]: first position of batch i in order_; offsets_[num_batches_] = n

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  bool stop_ = false, done_ = false;
  std::thread thread_;
};

/// Sizes of the micro-batches covering n samples with batch size b (the last may be shorter).
std::vector<int64_t> micro_batch_sizes(int64_t n, int64_t b);

/// One data-parallel rank's part of an epoch. Global micro-batch k holds global_sizes[k] consecutive
/// positions of `order`; the rank takes the block [size_k·r/W, size_k·(r+1)/W) of it. Blocks of all ranks
/// are disjoint and cover the epoch; full micro-batches split evenly, a short tail may leave a rank an
/// empty micro-batch (it still joins the step's all-reduce, so no rank waits forever).
struct Shard {
  at::Tensor order;                ///< the rank's positions, micro-batch after micro-batch
  std::vector<int64_t> sizes;      ///< the rank's samples in each global micro-batch
};
Shard shard_epoch(const at::Tensor& order, const std::vector<int64_t>& global_sizes, int rank, int world);

}  // namespace loom::host
