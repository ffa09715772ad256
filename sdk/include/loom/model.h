// A model is a torch::nn::Module with a virtual forward, so the host can train any model a plugin builds.
// Factories read the input shape and class count from CreateContext::dataset->spec().
#pragma once

#include <loom/kinds.h>

#include <torch/nn/module.h>

namespace loom {

class Model : public torch::nn::Module {
 public:
  /// [B, shape...] → logits [B, num_classes]. Dropout and BatchNorm follow is_training().
  virtual at::Tensor forward(const at::Tensor& input) = 0;
};

/// The model kind: required; one per TrainerServices::create_model() call.
template <>
struct KindTraits<Model> : KindTraitsBase {
  static constexpr Kind kind = Kind::Model;
  static constexpr Creation creation = Creation::OnDemand;
  static constexpr int order = 40;
};

}  // namespace loom
