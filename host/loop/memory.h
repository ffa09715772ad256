// Peak CPU memory of tensors, measured by a counting CPU allocator installed for the run. It serves the
// `peak_memory_mb` metric and the accumulation plugins' micro-batch probe (how much memory one forward +
// backward of a given micro-batch needs), so "memory follows the micro-batch" is a measurement.
// It also keeps freed blocks of 1 MiB or more (up to 1 GiB) for reuse by same-size requests: every
// batch of a run has the same size, and a fresh multi-MB allocation per batch costs page faults and
// zeroing that dominated the cached loader's time (docs/benchmarks.md).
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
