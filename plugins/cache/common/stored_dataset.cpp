#include "cache/common/stored_dataset.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>
#include <stdexcept>

namespace loom::caching {

StoredDataset::StoredDataset(std::shared_ptr<Dataset> inner, at::Tensor stored, StoreFormat format, std::string who)
    : inner_(std::move(inner)), stored_(std::move(stored)), format_(std::move(format)), who_(std::move(who)) {
  if (stored_.dim() < 1 || stored_.size(0) != inner_->size() || stored_.scalar_type() != format_.store() ||
      !stored_.is_contiguous())
    throw std::logic_error(who_ + ": stored rows do not match the dataset");
}

void check_load_indices(const at::Tensor& indices, int64_t size, const std::string& who) {
  if (indices.scalar_type() != at::kLong || indices.dim() != 1)
    throw std::invalid_argument(who + ": load() wants a 1-D int64 index tensor");
  if (indices.numel() > 0) {
    const auto [lo, hi] = at::aminmax(indices);
    if (lo.item<int64_t>() < 0 || hi.item<int64_t>() >= size)
      throw std::out_of_range(who + ": load() index out of range 0.." + std::to_string(size - 1));
  }
}

at::Tensor StoredDataset::load(const at::Tensor& indices) const {
  check_load_indices(indices, size(), who_);
  // The gather is one memcpy per row, split over the intra-op threads in chunks of about a megabyte:
  // for rows of kilobytes this runs near memory bandwidth, several times faster than index_select,
  // whose generic kernel copies element-wise (measured in docs/benchmarks.md).
  const at::Tensor rows = indices.cpu().contiguous();
  const int64_t count = rows.numel();
  std::vector<int64_t> shape = stored_.sizes().vec();
  shape[0] = count;
  at::Tensor gathered = at::empty(shape, stored_.options());
  const int64_t row_bytes = stored_.numel() == 0 ? 0 : stored_.nbytes() / stored_.size(0);
  const auto* src = static_cast<const char*>(stored_.const_data_ptr());
  auto* dst = static_cast<char*>(gathered.mutable_data_ptr());
  const int64_t* index = rows.const_data_ptr<int64_t>();
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(row_bytes, 1));
  at::parallel_for(0, count, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) std::memcpy(dst + i * row_bytes, src + index[i] * row_bytes, row_bytes);
  });
  return format_.from_store(gathered);
}

}  // namespace loom::caching
