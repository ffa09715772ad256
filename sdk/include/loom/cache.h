// A cache is a dataset decorator: same contract, faster `load`. It may only store what `load` returns
// (deterministic bytes); `augment` must be forwarded to the wrapped dataset untouched.
#pragma once

#include <loom/dataset.h>
#include <loom/kinds.h>

#include <memory>

namespace loom {

class Cache {
 public:
  static constexpr Kind kKind = Kind::Cache;
  virtual ~Cache() = default;
  /// Returns a dataset serving the same samples as `inner` (possibly `inner` itself).
  virtual std::shared_ptr<Dataset> wrap(std::shared_ptr<Dataset> inner) = 0;
};

}  // namespace loom
