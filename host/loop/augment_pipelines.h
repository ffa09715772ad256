// The run's [[augmentation]] ops grouped into named pipelines (each table's `pipeline`, default
// "default"), in file order. A training stage asks for one by name (TrainRequest::augmentation); the
// loader runs it on every micro-batch after the cache and the copy to the device, each op's call guarded.
#pragma once

#include "plugins/plugin_guard.h"

#include <loom/augmentation.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace loom::host {

class AugmentPipeline {
 public:
  void add(PluginRef who, std::shared_ptr<Augmentation> op);
  bool empty() const { return ops_.empty(); }
  /// "random-crop → flip → randaugment"
  std::string describe() const;
  /// Runs every op in order on the batch, each with the same generator (one stream per micro-batch).
  void apply(AugmentBatch& batch, at::Generator& generator) const;

 private:
  std::vector<std::pair<PluginRef, std::shared_ptr<Augmentation>>> ops_;
};

class AugmentPipelines {
 public:
  void add(const std::string& pipeline, PluginRef who, std::shared_ptr<Augmentation> op);
  /// The pipeline a stage asked for: nullptr for "default" when no table forms it (no augmentation).
  /// Throws std::invalid_argument naming the pipelines the config defines for any other unknown name.
  const AugmentPipeline* find(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, AugmentPipeline> pipelines_;
};

}  // namespace loom::host
