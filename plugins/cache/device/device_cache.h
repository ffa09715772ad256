// The `device` cache: every preprocessed sample in one tensor on the run's device (the GPU on CUDA runs),
// as uint8 pixels where the dataset declares a pixel affine (4x smaller than float32, bit-identical). A
// batch is then one gather and one conversion on the device: no host-side gather, no pinned copy, and
// the augmentation pipeline runs on the device as always. On the CPU it is a memory cache whose batches
// come from index_select (the memory cache's row memcpy is faster there).
#pragma once

#include <loom/plugin.h>

#include <memory>
#include <string>

namespace loom::builtin {

class DeviceCache final : public Cache {
 public:
  static FeatureInfo info();
  explicit DeviceCache(const CreateContext& ctx);
  std::shared_ptr<Dataset> wrap(std::shared_ptr<Dataset> inner) override;

 private:
  RunContext& run_;
  std::string store_dtype_;
  int64_t max_bytes_;
};

}  // namespace loom::builtin
