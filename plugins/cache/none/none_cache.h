// The neutral cache: serves the dataset as it is.
#pragma once

#include <loom/plugin.h>

namespace loom::builtin {

class NoCache final : public Cache {
 public:
  static FeatureInfo info();
  std::shared_ptr<Dataset> wrap(std::shared_ptr<Dataset> inner) override;
};

}  // namespace loom::builtin
