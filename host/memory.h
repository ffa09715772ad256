// Peak CPU memory of tensors, measured by a counting CPU allocator installed for the run. It serves the
// `peak_memory_mb` metric and the accumulation plugins' micro-batch probe (how much memory one forward +
// backward of a given micro-batch needs), so "memory follows the micro-batch" is a measurement.
#pragma once

#include <cstdint>

namespace loom::host {

class CpuMemoryTracker {
 public:
  /// Installs the counting allocator as LibTorch's CPU allocator (idempotent).
  static void install();
  static bool installed();
  static int64_t current_bytes();
  static int64_t peak_bytes();
  /// Starts a new peak window at the current usage.
  static void reset_peak();
};

}  // namespace loom::host
