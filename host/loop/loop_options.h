// The loop's settings, typed and read once from the resolved config (no string lookups inside the loop).
#pragma once

#include "config/resolve.h"

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace loom::host {

struct LoopOptions {
  // Every value comes from the resolved config (LoopOptions::from); the host schemas
  // (config/schemas.cpp) own the defaults, so the members start neutral rather than repeat them.
  int64_t batch_size = 0;         ///< [loader] batch_size (the accumulation plugin may choose another)
  int64_t eval_batch_size = 0;    ///< [loader] eval_batch_size
  int64_t prefetch = 0;           ///< [loader] prefetch with auto resolved for the device
  bool shuffle = false;           ///< [loader] shuffle
  int64_t epochs = 0;             ///< [run] epochs: a stage's default
  int64_t val_every = 0;          ///< [run] val_every: validate every n-th epoch and a stage's last
  double log_every_seconds = 0;   ///< [run] log_every_seconds
  bool sync_bn = false, verify_replicas = false;  ///< [run] sync_bn, verify_replicas
  bool test_on_best = false;      ///< [run] test_on = "best"
  double label_smoothing = 0.0;   ///< [loss] label_smoothing (training loss only)

  static LoopOptions from(const ResolvedConfig& config, c10::Device device);
};

}  // namespace loom::host
