#include "memory_cache.h"

#include "cache/common/chunked_build.h"
#include "cache/common/store_format.h"
#include "cache/common/stored_dataset.h"

#include <ATen/ATen.h>

#include <unistd.h>

#include <chrono>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace loom::builtin {
namespace {

constexpr const char* kWho = "memory cache";

uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size) : 0;
}

}  // namespace

FeatureInfo MemoryCache::info() {
  return {.name = "memory",
          .version = "1.0.0",
          .summary = "all preprocessed samples in one tensor in RAM, built in parallel at start-up",
          .params = {
              caching::store_dtype_param(),
              ParamSpec::integer("max_bytes", 0).at_least(0)
                  .doc("refuse to cache more than this many bytes (exact size, checked before allocating); "
                       "0: half of the machine's physical memory"),
          }};
}

MemoryCache::MemoryCache(const CreateContext& ctx)
    : run_(ctx.run), store_dtype_(ctx.params.str("store_dtype")), max_bytes_(ctx.params.integer("max_bytes")) {}

std::shared_ptr<Dataset> MemoryCache::wrap(std::shared_ptr<Dataset> inner) {
  if (!inner) throw std::invalid_argument("memory cache: wrap() needs a dataset");
  const SampleSpec spec = inner->spec();
  caching::StoreFormat format(store_dtype_, spec, kWho);
  const int64_t count = inner->size();
  const uint64_t bytes = caching::stored_bytes(count, spec.shape, format.store());
  const uint64_t physical = physical_memory_bytes();
  const uint64_t limit = max_bytes_ > 0 ? static_cast<uint64_t>(max_bytes_)
                         : physical > 0 ? physical / 2
                                        : std::numeric_limits<uint64_t>::max();  // unknown: only max_bytes limits
  if (bytes > limit) {
    std::ostringstream msg;
    msg << caching::too_large_start(kWho, count, spec, format, bytes)
        << (max_bytes_ > 0 ? "max_bytes = " + std::to_string(limit)
                           : "half of this machine's physical memory (max_bytes = 0), " + std::to_string(limit))
        << " bytes (" << caching::human_bytes(limit) << "). Fix: use the npy cache ([cache] plugin = \"npy\", "
        << "memory-mapped, so the OS keeps in RAM only what fits), a smaller store_dtype (\"float16\", or \"uint8\" "
        << "for datasets that declare pixel_scale/pixel_shift), or raise max_bytes";
    throw std::runtime_error(msg.str());
  }
  format.warn_if_lossy(run_.logger());

  const auto started = std::chrono::steady_clock::now();
  at::Tensor stored = caching::build_rows(*inner, format, run_, kWho);
  caching::log_build(run_, kWho, count, bytes, format, "", started);
  return std::make_shared<caching::StoredDataset>(std::move(inner), std::move(stored), std::move(format), kWho);
}

}  // namespace loom::builtin
