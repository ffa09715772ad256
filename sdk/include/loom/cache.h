// A cache is a dataset decorator: same contract, faster `load`. It may only store what `load` returns
// (deterministic bytes); `augment` must be forwarded to the wrapped dataset untouched.
//
// On-disk caches also serve `loom cache build|info|clear`: location() says where a dataset's cache lives,
// inspect() explains a directory, clear() removes one. For `loom cache info DIR` and `loom cache clear DIR`
// the host creates the cache plugin with default params and a null CreateContext::dataset.
#pragma once

#include <loom/dataset.h>
#include <loom/kinds.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace loom {

class Cache {
 public:
  virtual ~Cache() = default;
  /// Returns a dataset serving the same samples as `inner` (possibly `inner` itself).
  /// Builds (or validates and opens) the cache as needed; `loom cache build` is wrap() without training.
  virtual std::shared_ptr<Dataset> wrap(std::shared_ptr<Dataset> inner) = 0;
  /// The directory holding (or that will hold) `inner`'s cache. Empty: the cache keeps nothing on disk.
  virtual std::filesystem::path location(const Dataset& inner) const {
    (void)inner;
    return {};
  }
  /// Human-readable description of a cache directory this plugin wrote (what it holds, the fingerprint
  /// inputs, size, whether it is complete and valid). std::nullopt: `dir` is not one of this plugin's.
  virtual std::optional<std::string> inspect(const std::filesystem::path& dir) const {
    (void)dir;
    return std::nullopt;
  }
  /// Removes a cache directory this plugin wrote, safely with respect to concurrent builders. Throws if
  /// `dir` is not one of this plugin's caches.
  virtual void clear(const std::filesystem::path& dir) const {
    throw std::runtime_error("this cache keeps nothing on disk; nothing to clear at '" + dir.string() + "'");
  }
};

/// The cache kind: wraps the dataset.
template <>
struct KindTraits<Cache> : KindTraitsBase {
  static constexpr Kind kind = Kind::Cache;
  static constexpr std::string_view neutral = "none";
  static constexpr int order = 30;
};

}  // namespace loom
