#include "plugins/run_plugins.h"

#include "cli/setup.h"

namespace loom::host {

CreatedPlugins create_run_plugins(const Registry& registry, const ResolvedConfig& config, HostRunContext& context,
                                  std::shared_ptr<Communicator> communicator, bool wrap_cache) {
  CreatedPlugins out;
  RunPlugins& p = out.run;
  p.communicator = std::move(communicator);
  std::shared_ptr<Dataset> raw;
  std::shared_ptr<Dataset> data;
  for (const KindInfo& info : kind_table()) {
    for (const PluginChoice& choice : config.many(info.kind)) {
      const PluginRef who = PluginRef::of(*choice.feature);
      CreateContext ctx{choice.params, context, data};
      switch (info.kind) {
        case Kind::Communicator: break;  // created first, by the caller
        case Kind::Dataset:
          raw = registry.create<Dataset>(*choice.feature, ctx);
          data = std::make_shared<GuardedDataset>(raw, who);
          break;
        case Kind::Cache: {
          auto cache = registry.create<Cache>(*choice.feature, {choice.params, context, raw});
          if (!wrap_cache) break;
          auto wrapped = guarded(who, "wrap", [&] { return cache->wrap(raw); });
          // Samples now come from the cache's dataset, unless it returned the dataset itself.
          if (wrapped != raw) data = std::make_shared<GuardedDataset>(wrapped, who);
          check_dataset(*data, config.one(Kind::Dataset).feature->info.name);
          break;
        }
        case Kind::Model: break;  // created per stage by TrainerServices::create_model()
        case Kind::Precision:
          p.precision = std::make_shared<GuardedPrecision>(registry.create<Precision>(*choice.feature, ctx), who);
          break;
        case Kind::Accumulation:
          p.accumulation = std::make_shared<GuardedAccumulation>(registry.create<Accumulation>(*choice.feature, ctx), who);
          break;
        case Kind::SelfTraining:
          out.driver = registry.create<SelfTraining>(*choice.feature, ctx);
          out.driver_ref = who;
          break;
        case Kind::Callback:
          p.callbacks.add(who, registry.create<Callback>(*choice.feature, ctx), choice.id, choice.table, params_text(choice.params));
          break;
        case Kind::MetricSink:
          p.metrics.add(who, registry.create<MetricSink>(*choice.feature, ctx), choice.id, choice.table, params_text(choice.params));
          break;
        case Kind::Augmentation:
          // After the dataset and cache (ctx.dataset is the data the ops will see, for its spec).
          p.augmentations.add(choice.pipeline, who, registry.create<Augmentation>(*choice.feature, ctx));
          break;
      }
    }
  }
  p.dataset = std::static_pointer_cast<GuardedDataset>(data);
  return out;
}

}  // namespace loom::host
