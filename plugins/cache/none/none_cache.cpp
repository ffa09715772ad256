#include "none_cache.h"

namespace loom::builtin {

FeatureInfo NoCache::info() {
  return {.name = "none",
          .version = "1.0.0",
          .summary = "no cache: every batch is loaded from the dataset",
          .params = {}};
}

std::shared_ptr<Dataset> NoCache::wrap(std::shared_ptr<Dataset> inner) { return inner; }

}  // namespace loom::builtin
