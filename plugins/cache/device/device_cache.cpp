#include "device_cache.h"

#include "cache/common/chunked_build.h"
#include "cache/common/store_format.h"
#include "cache/common/stored_dataset.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <sstream>
#include <stdexcept>

namespace loom::builtin {
namespace {

constexpr const char* kWho = "device cache";

/// The cached dataset: load() gathers rows on the device and converts them there.
class DeviceDataset final : public Dataset {
 public:
  DeviceDataset(std::shared_ptr<Dataset> inner, at::Tensor stored, caching::StoreFormat format)
      : inner_(std::move(inner)), stored_(std::move(stored)), format_(std::move(format)) {}

  SampleSpec spec() const override { return inner_->spec(); }
  int64_t size() const override { return inner_->size(); }
  at::Tensor indices(Split split) const override { return inner_->indices(split); }
  at::Tensor labels() const override { return inner_->labels(); }
  std::string fingerprint() const override { return inner_->fingerprint(); }
  std::map<std::string, int64_t> counters() const override { return inner_->counters(); }

  at::Tensor load(const at::Tensor& indices) const override {
    caching::check_load_indices(indices, size(), kWho);
    const at::Tensor rows = stored_.index_select(0, indices.to(stored_.device()));
    // The same conversions as StoreFormat::from_store, written with device ops: uint8 pixels through
    // loom::from_pixels (what the dataset's own load() runs), other store dtypes cast back.
    if (format_.store() == at::kByte && !format_.spec().pixel_scale.empty()) return from_pixels(rows, format_.spec());
    return rows.scalar_type() == format_.spec().dtype ? rows : rows.to(format_.spec().dtype);
  }

 private:
  std::shared_ptr<Dataset> inner_;
  at::Tensor stored_;  ///< [size, shape...] on the run's device, in format_.store()
  caching::StoreFormat format_;
};

}  // namespace

FeatureInfo DeviceCache::info() {
  ParamSpec store = caching::store_dtype_param();
  store.doc("auto: uint8 pixels where the dataset declares pixel_scale/pixel_shift (exact), else the dataset's "
            "dtype; float32, float16 (lossy for float32 data) or uint8 (needs the declaration) as asked");
  return {.name = "device",
          .version = "1.0.0",
          .summary = "all preprocessed samples in one tensor on the run's device (uint8 where exact); batches "
                     "gathered and converted there",
          .params = {
              store,
              ParamSpec::integer("max_bytes", 0).at_least(0)
                  .doc("refuse to cache more than this many bytes on the device (checked before allocating); 0: "
                       "no limit of its own (an allocation the device cannot hold fails with a clear message)"),
          }};
}

DeviceCache::DeviceCache(const CreateContext& ctx)
    : run_(ctx.run), store_dtype_(ctx.params.str("store_dtype")), max_bytes_(ctx.params.integer("max_bytes")) {}

std::shared_ptr<Dataset> DeviceCache::wrap(std::shared_ptr<Dataset> inner) {
  if (!inner) throw std::invalid_argument("device cache: wrap() needs a dataset");
  const SampleSpec spec = inner->spec();
  const bool pixels = !spec.pixel_scale.empty() && at::isFloatingType(spec.dtype);
  caching::StoreFormat format(store_dtype_ == "auto" && pixels ? "uint8" : store_dtype_, spec, kWho);
  const c10::Device device = run_.device();
  const int64_t count = inner->size();
  const uint64_t bytes = caching::stored_bytes(count, spec.shape, format.store());
  if (max_bytes_ > 0 && bytes > static_cast<uint64_t>(max_bytes_)) {
    std::ostringstream msg;
    msg << caching::too_large_start(kWho, count, spec, format, bytes) << "max_bytes = " << max_bytes_ << " ("
        << caching::human_bytes(static_cast<uint64_t>(max_bytes_)) << "). Fix: raise max_bytes, store uint8 or "
        << "float16, or use the memory cache ([cache] plugin = \"memory\": host RAM, copied per batch)";
    throw std::runtime_error(msg.str());
  }
  format.warn_if_lossy(run_.logger());

  const auto started = std::chrono::steady_clock::now();
  // Built in host memory (the shared parallel build), then copied to the device once.
  at::Tensor host = caching::build_rows(*inner, format, run_, kWho);
  at::Tensor stored;
  try {
    stored = host.to(device);
  } catch (const c10::OutOfMemoryError& e) {
    throw std::runtime_error(std::string(kWho) + ": " + device.str() + " cannot hold the dataset's " +
                             caching::human_bytes(bytes) + " as " + format.store_name() +
                             " (out of memory). Fix: store uint8 or float16, or use the memory cache ([cache] plugin "
                             "= \"memory\")");
  }
  caching::log_build(run_, kWho, count, bytes, format, " on " + device.str(), started);
  return std::make_shared<DeviceDataset>(std::move(inner), std::move(stored), std::move(format));
}

}  // namespace loom::builtin
