// The trainer's models: the one way a model comes to be (build_model), for the run's own models
// (create_model, create_student_model), copies (clone_model, for callbacks) and a finished stage's weights
// (stage_weights); each kept in the ModelBook with the plugin that made it and its input layout.
#include "loop/trainer.h"

#include "plugins/run_context.h"
#include "state/checkpoint.h"

#include <torch/utils.h>

namespace loom::host {

std::shared_ptr<Model> Trainer::create_model() { return create_from(config_.one(Kind::Model)); }

std::shared_ptr<Model> Trainer::create_student_model() {
  return config_.student_model ? create_from(*config_.student_model) : create_model();
}

const PluginChoice& Trainer::architecture_of(const Model& model) const { return *models_.of(model).choice; }

std::shared_ptr<Model> Trainer::build_model(const PluginChoice& choice, bool run_model) {
  // A run model is seeded per call, so the k-th model of a resumed run is the k-th model of the original
  // run; any other (a clone, reloaded stage weights) leaves the seed counter and every random stream as
  // they were, so a run with and without it draws the same numbers.
  at::Tensor rng;
  if (run_model)
    torch::manual_seed(derive_seed(context_.seed(), "model/" + std::to_string(models_created_++)));
  else
    rng = rng_state(c10::Device(c10::kCPU));
  std::shared_ptr<Model> model = registry_.create<Model>(*choice.feature, {choice.params, context_, plugins_.dataset});
  if (!run_model) set_rng_state(c10::Device(c10::kCPU), rng);
  const PluginRef who = PluginRef::of(*choice.feature);
  guarded(who, "to", [&] { model->to(context_.device()); });
  const PreparedModel prepared = plugins_.precision.call<&Precision::prepare>(*model, context_.device());
  return models_.keep(std::move(model), {&choice, who, prepared.input_memory_format});
}

std::shared_ptr<Model> Trainer::stage_weights(const std::string& stage, StageWeights which) {
  if (!finished_stages_.count(stage))
    throw std::invalid_argument("stage_weights: stage '" + stage + "' has not finished in this run");
  const bool substituted = averaged_stages_.count(stage) > 0;
  if (which == StageWeights::Averaged && !substituted) return nullptr;
  const std::filesystem::path file = substituted ? stage_file(stage, which) : stage_file(stage);
  const PluginChoice& choice = student_stages_.count(stage) ? *config_.student_model : config_.one(Kind::Model);
  std::shared_ptr<Model> model = build_model(choice, /*run_model=*/false);
  // Rank 0 wrote the file and reads it; the other ranks take its weights (their run_dir may be a scratch
  // directory, or rank 0 may still be writing).
  if (dp_.primary()) read_model(file, *model);
  dp_.broadcast_model(*model);
  return model;
}

std::shared_ptr<Model> Trainer::create_from(const PluginChoice& choice) {
  std::shared_ptr<Model> model = build_model(choice, /*run_model=*/true);
  dp_.broadcast_model(*model);  // identical replicas: rank 0's initial weights everywhere
  return model;
}

std::shared_ptr<Model> Trainer::clone_model(const Model& source) {
  std::shared_ptr<Model> model = build_model(architecture_of(source), /*run_model=*/false);
  load_module_state(*model, module_state(const_cast<Model&>(source)), "clone_model");
  model->train(source.is_training());
  return model;
}

}  // namespace loom::host
