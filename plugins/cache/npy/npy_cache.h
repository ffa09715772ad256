// The `npy` cache: preprocessed samples in numpy-readable .npy files under <dir>/<key>/, memory-mapped,
// so a batch is one gather over the page cache. Keyed by the dataset's fingerprint, crash-safe to build,
// locked against concurrent builders, validated on every open and rebuilt (with a log line saying why)
// whenever it is missing, stale, truncated or corrupt. The layout is described in docs/caching.md.
#pragma once

#include "cache_dir.h"

#include <loom/plugin.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace loom::builtin {

class NpyCache final : public Cache {
 public:
  static FeatureInfo info();
  /// Needs no dataset: `loom cache info|clear DIR` creates it with defaults to call inspect()/clear().
  explicit NpyCache(const CreateContext& ctx);

  std::shared_ptr<Dataset> wrap(std::shared_ptr<Dataset> inner) override;
  std::filesystem::path location(const Dataset& inner) const override;
  std::optional<std::string> inspect(const std::filesystem::path& dir) const override;
  void clear(const std::filesystem::path& dir) const override;

 private:
  caching::StoreFormat format_for(const Dataset& inner) const;
  std::string why_building(const std::filesystem::path& dir, const std::string& fingerprint,
                           const std::string& store_dtype) const;

  RunContext& run_;
  std::filesystem::path root_;
  std::string store_dtype_;
  npy_cache::Verify verify_;
};

}  // namespace loom::builtin
