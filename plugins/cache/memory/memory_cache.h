// The `memory` cache: every preprocessed sample in one contiguous tensor in RAM, built once at wrap() in
// parallel; a batch is then one gather. Its size is computed exactly up front (size() x shape x element
// size) and refused, before anything is allocated, when it exceeds max_bytes.
#pragma once

#include <loom/plugin.h>

#include <memory>

namespace loom::builtin {

class MemoryCache final : public Cache {
 public:
  static FeatureInfo info();
  explicit MemoryCache(const CreateContext& ctx);
  std::shared_ptr<Dataset> wrap(std::shared_ptr<Dataset> inner) override;

 private:
  RunContext& run_;
  std::string store_dtype_;
  int64_t max_bytes_;
};

}  // namespace loom::builtin
