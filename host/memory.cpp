#include "memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <atomic>
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
  }
  g_current.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed);
  c10::free_cpu(data);
}

class CountingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    void* data = n ? c10::alloc_cpu(n) : nullptr;
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
