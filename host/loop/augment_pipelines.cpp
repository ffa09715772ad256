#include "loop/augment_pipelines.h"

#include <stdexcept>

namespace loom::host {

void AugmentPipeline::add(PluginRef who, std::shared_ptr<Augmentation> op) { ops_.emplace_back(std::move(who), std::move(op)); }

std::string AugmentPipeline::describe() const {
  std::string out;
  for (const auto& [who, op] : ops_) out += (out.empty() ? "" : " → ") + who.name;
  return out;
}

void AugmentPipeline::apply(AugmentBatch& batch, at::Generator& generator) const {
  const int64_t n = batch.x.size(0);
  for (const auto& [who, op] : ops_) {
    guarded(who, "apply", [&] { op->apply(batch, generator); });
    // The loop relies on this shape of the batch; a plugin that breaks it is named here, not in a kernel.
    const bool ok = batch.x.defined() && batch.x.size(0) == n && batch.y.defined() && batch.y.size(0) == n &&
                    (batch.y.dim() == 1 || batch.y.dim() == 2) && (!batch.w.defined() || batch.w.numel() == n);
    if (!ok)
      throw PluginError(who.describe() + " failed in apply: it returned a batch that is not " + std::to_string(n) +
                        " inputs with " + std::to_string(n) + " targets (int64 [B] or float [B, C]) and weights");
  }
}

void AugmentPipelines::add(const std::string& pipeline, PluginRef who, std::shared_ptr<Augmentation> op) {
  pipelines_[pipeline].add(std::move(who), std::move(op));
}

const AugmentPipeline* AugmentPipelines::find(const std::string& name) const {
  auto it = pipelines_.find(name);
  if (it != pipelines_.end()) return &it->second;
  if (name == "default") return nullptr;
  std::string known;
  for (const auto& [n, p] : pipelines_) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("no [[augmentation]] table has pipeline = \"" + name + "\" (" +
                              (known.empty() ? std::string("the config defines no augmentation") : "pipelines defined: " + known) +
                              "); add the ops of that pipeline as [[augmentation]] tables with pipeline = \"" + name + "\"");
}

std::vector<std::string> AugmentPipelines::names() const {
  std::vector<std::string> out;
  for (const auto& [n, p] : pipelines_) out.push_back(n);
  // "default" always exists: without [[augmentation]] tables it is the empty pipeline.
  if (!pipelines_.count("default")) out.insert(out.begin(), "default");
  return out;
}

}  // namespace loom::host
