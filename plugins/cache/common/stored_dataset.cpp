#include "cache/common/stored_dataset.h"

#include <ATen/ATen.h>

#include <stdexcept>

namespace loom::caching {

StoredDataset::StoredDataset(std::shared_ptr<Dataset> inner, at::Tensor stored, StoreFormat format, std::string who)
    : inner_(std::move(inner)), stored_(std::move(stored)), format_(std::move(format)), who_(std::move(who)) {
  if (stored_.dim() < 1 || stored_.size(0) != inner_->size() || stored_.scalar_type() != format_.store())
    throw std::logic_error(who_ + ": stored rows do not match the dataset");
}

at::Tensor StoredDataset::load(const at::Tensor& indices) const {
  if (indices.scalar_type() != at::kLong || indices.dim() != 1)
    throw std::invalid_argument(who_ + ": load() wants a 1-D int64 index tensor");
  if (indices.numel() > 0) {
    const auto [lo, hi] = at::aminmax(indices);
    if (lo.item<int64_t>() < 0 || hi.item<int64_t>() >= size())
      throw std::out_of_range(who_ + ": load() index out of range 0.." + std::to_string(size() - 1));
  }
  return format_.from_store(stored_.index_select(0, indices.cpu()));
}

}  // namespace loom::caching
