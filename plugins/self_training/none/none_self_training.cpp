#include "none_self_training.h"

namespace loom::builtin {

FeatureInfo Supervised::info() {
  return {.name = "none",
          .version = "1.0.0",
          .summary = "plain supervised training on the labeled split",
          .params = {}};
}

std::shared_ptr<Model> Supervised::run(TrainerServices& services) {
  std::shared_ptr<Model> model = services.create_model();
  services.train(*model, TrainRequest{.stage = "supervised", .round = 0, .epochs = 0,
                                      .data = services.split(Split::Labeled)});
  return model;
}

}  // namespace loom::builtin
