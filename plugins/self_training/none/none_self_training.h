// The neutral self-training strategy: one supervised run on the labeled split.
#pragma once

#include <loom/plugin.h>

namespace loom::builtin {

class Supervised final : public SelfTraining {
 public:
  static FeatureInfo info();
  std::shared_ptr<Model> run(TrainerServices& services) override;
};

}  // namespace loom::builtin
