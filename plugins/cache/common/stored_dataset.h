// The dataset a sample-storing cache hands back: load() is one gather (index_select) over the stored
// rows plus the store format's conversion; everything else is forwarded to the wrapped dataset.
#pragma once

#include "cache/common/store_format.h"

#include <loom/dataset.h>

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

namespace loom::caching {

/// What every cached dataset's load() checks first: `indices` is a 1-D int64 tensor of indices in
/// 0..size-1; throws otherwise (`who` names the cache).
void check_load_indices(const at::Tensor& indices, int64_t size, const std::string& who);

class StoredDataset final : public Dataset {
 public:
  /// `stored` is [inner->size(), shape...] in format.store(), row i holding dataset index i; it may be
  /// a read-only memory-mapped tensor (never written here). `who` names the cache in error messages.
  StoredDataset(std::shared_ptr<Dataset> inner, at::Tensor stored, StoreFormat format, std::string who);

  SampleSpec spec() const override { return inner_->spec(); }
  int64_t size() const override { return inner_->size(); }
  at::Tensor indices(Split split) const override { return inner_->indices(split); }
  at::Tensor labels() const override { return inner_->labels(); }
  at::Tensor load(const at::Tensor& indices) const override;
  std::string fingerprint() const override { return inner_->fingerprint(); }
  std::map<std::string, int64_t> counters() const override { return inner_->counters(); }

 private:
  std::shared_ptr<Dataset> inner_;
  at::Tensor stored_;
  StoreFormat format_;
  std::string who_;
};

}  // namespace loom::caching
