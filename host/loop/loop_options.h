// The loop's settings, typed and read once from the resolved config (no string lookups inside the loop).
#pragma once

#include "config/resolve.h"

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace loom::host {

struct LoopOptions {
  int64_t batch_size = 128;       ///< [loader] batch_size (the accumulation plugin may choose another)
  int64_t eval_batch_size = 1024;
  int64_t prefetch = 0;           ///< [loader] prefetch with auto resolved for the device
  bool shuffle = true;
  int64_t epochs = 1;             ///< [run] epochs: a stage's default
  int64_t val_every = 1;          ///< [run] val_every: validate every n-th epoch and a stage's last
  double log_every_seconds = 10;
  bool sync_bn = false, verify_replicas = false;
  bool test_on_best = false;      ///< [run] test_on = "best"
  double label_smoothing = 0.0;   ///< [loss] label_smoothing (training loss only)

  static LoopOptions from(const ResolvedConfig& config, c10::Device device);
};

}  // namespace loom::host
