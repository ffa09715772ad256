#include "cache/common/chunked_build.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace loom::caching {
namespace {

// Big enough to amortise a load() call, small enough to balance the threads and move the progress bar.
constexpr uint64_t kChunkBytes = 4u << 20;

void check_chunk(const at::Tensor& samples, int64_t first, int64_t count, const SampleSpec& spec, const std::string& label) {
  std::vector<int64_t> expected = {count};
  expected.insert(expected.end(), spec.shape.begin(), spec.shape.end());
  if (samples.sizes().vec() != expected || samples.scalar_type() != spec.dtype || !samples.device().is_cpu())
    throw std::runtime_error(label + ": the dataset's load() of samples " + std::to_string(first) + ".." +
                             std::to_string(first + count - 1) + " returned " + shape_text(samples.sizes().vec()) +
                             " " + dtype_name(samples.scalar_type()) + " on " + samples.device().str() +
                             "; its spec() promises " + shape_text(expected) + " " + dtype_name(spec.dtype) +
                             " on the CPU");
}

}  // namespace

void build_in_chunks(const Dataset& inner, const StoreFormat& format, RunContext& run, const std::string& label,
                     const ChunkSink& sink) {
  const SampleSpec& spec = format.spec();
  const int64_t total = inner.size();
  const uint64_t sample_bytes = std::max<uint64_t>(1, stored_bytes(1, spec.shape, spec.dtype));
  const int threads = std::max(1, run.threads());
  // At least a few chunks per thread so a slow chunk does not leave the others idle at the end.
  const int64_t balanced = (total + 4 * threads - 1) / (4 * threads);
  const int64_t chunk = std::clamp<int64_t>(static_cast<int64_t>(kChunkBytes / sample_bytes), 1, std::max<int64_t>(1, balanced));
  const int64_t chunks = (total + chunk - 1) / chunk;

  auto progress = run.progress(label, total);
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;

  auto work = [&] {
    while (!failed.load()) {
      const int64_t c = next.fetch_add(1);
      if (c >= chunks) return;
      const int64_t first = c * chunk;
      const int64_t count = std::min(chunk, total - first);
      try {
        const at::Tensor samples = inner.load(at::arange(first, first + count, at::kLong));
        check_chunk(samples, first, count, spec, label);
        sink(first, format.to_store(samples, first).contiguous());
        progress->advance(count);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  const int workers = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, chunks)));
  std::vector<std::thread> pool;
  try {
    for (int i = 1; i < workers; ++i) pool.emplace_back(work);
  } catch (...) {  // no thread to spare: stop the ones started, then report
    failed = true;
    for (std::thread& t : pool) t.join();
    throw;
  }
  work();  // the calling thread is one of the workers
  for (std::thread& t : pool) t.join();
  progress->finish();
  if (error) std::rethrow_exception(error);
}

at::Tensor build_rows(const Dataset& inner, const StoreFormat& format, RunContext& run, const std::string& label) {
  const SampleSpec spec = inner.spec();
  const int64_t count = inner.size();
  const uint64_t bytes = stored_bytes(count, spec.shape, format.store());
  std::vector<int64_t> shape = {count};
  shape.insert(shape.end(), spec.shape.begin(), spec.shape.end());
  at::Tensor stored = at::empty(shape, at::TensorOptions().dtype(format.store()));
  const int64_t row_bytes = count > 0 ? static_cast<int64_t>(bytes / static_cast<uint64_t>(count)) : 0;
  auto* base = static_cast<char*>(stored.data_ptr());
  build_in_chunks(inner, format, run, label, [&](int64_t first, const at::Tensor& rows) {
    std::memcpy(base + first * row_bytes, rows.data_ptr(), static_cast<size_t>(rows.size(0) * row_bytes));
  });
  return stored;
}

void log_build(RunContext& run, const std::string& who, int64_t count, uint64_t bytes, const StoreFormat& format,
               const std::string& where, std::chrono::steady_clock::time_point started) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::ostringstream msg;
  msg << who << ": " << count << " samples (" << human_bytes(bytes) << " as " << format.store_name() << ")" << where
      << " in " << seconds << " s";
  run.logger().info(msg.str());
}

std::string too_large_start(const std::string& who, int64_t count, const SampleSpec& spec, const StoreFormat& format,
                            uint64_t bytes) {
  std::ostringstream msg;
  msg << who << ": the dataset needs " << count << " samples x " << shape_text(spec.shape) << " x "
      << c10::elementSize(format.store()) << " bytes (" << format.store_name() << ") = " << bytes << " bytes ("
      << human_bytes(bytes) << "), more than ";
  return msg.str();
}

}  // namespace loom::caching
