#include "loop/memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <unordered_map>

namespace loom::host {

namespace {

std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};
std::atomic<bool> g_installed{false};

// data pointer → size. A "simple" DataPtr (context == data) keeps raw_allocate()/raw_deleter() working
// for the LibTorch code that uses them, which a wrapping context would break.
std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}
std::unordered_map<void*, size_t>& table() {
  static auto* t = new std::unordered_map<void*, size_t>();  // never destroyed: frees may come at exit
  return *t;
}

void note_peak(int64_t now) {
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

// Freed blocks of at least kMinCached bytes are kept (up to kMaxCached in all) and handed out again for a
// request of the same size. Batches have the same size every step; without this, glibc serves each one
// with a fresh mmap (its mmap threshold caps at 32 MiB), and the page faults and zeroing of tens of MB per
// batch cost more than the gather itself (docs/benchmarks.md, caches). Cached blocks are not counted as
// in use: peak_memory_mb stays the tensors' peak.
constexpr size_t kMinCached = size_t{1} << 20;
constexpr size_t kMaxCached = size_t{1} << 30;
size_t g_cached_bytes = 0;  // guarded by table_mutex()
std::multimap<size_t, void*>& free_blocks() {
  static auto* blocks = new std::multimap<size_t, void*>();  // never destroyed, like table()
  return *blocks;
}

void counting_delete(void* data) {
  if (!data) return;
  size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(table_mutex());
    auto it = table().find(data);
    if (it != table().end()) {
      n = it->second;
      table().erase(it);
    }
    if (n >= kMinCached && g_cached_bytes + n <= kMaxCached) {
      free_blocks().emplace(n, data);
      g_cached_bytes += n;
      data = nullptr;
    }
  }
  g_current.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed);
  if (data) c10::free_cpu(data);
}

/// A cached block of exactly `n` bytes, or nullptr.
void* reuse_block(size_t n) {
  if (n < kMinCached) return nullptr;
  std::lock_guard<std::mutex> lock(table_mutex());
  auto it = free_blocks().find(n);
  if (it == free_blocks().end()) return nullptr;
  void* data = it->second;
  free_blocks().erase(it);
  g_cached_bytes -= n;
  return data;
}

class CountingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    void* data = reuse_block(n);
    if (!data && n) data = c10::alloc_cpu(n);
    if (data) {
      {
        std::lock_guard<std::mutex> lock(table_mutex());
        table()[data] = n;
      }
      note_peak(g_current.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed) + static_cast<int64_t>(n));
    }
    return {data, data, &counting_delete, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &counting_delete; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
};

}  // namespace

void CpuMemoryTracker::install() {
  if (g_installed.exchange(true)) return;
  static CountingCpuAllocator allocator;  // static: its deleter must outlive every tensor
  c10::SetCPUAllocator(&allocator, /*priority=*/100);
}

bool CpuMemoryTracker::installed() { return g_installed.load(); }
int64_t CpuMemoryTracker::current_bytes() { return g_current.load(); }
int64_t CpuMemoryTracker::peak_bytes() { return g_peak.load(); }
void CpuMemoryTracker::reset_peak() { g_peak.store(g_current.load()); }

}  // namespace loom::host
