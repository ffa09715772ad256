#include "plugins/run_plugins.h"

#include "cli/setup.h"
#include "plugins/kind_dispatch.h"

namespace loom::host {

namespace {

/// What the host does right after creating a plugin of a kind (most kinds: nothing). The data pipeline is
/// the one place where creation order carries data: the cache wraps the dataset just created, and every
/// kind created after it (augmentations, callbacks, …) sees the wrapped data in its CreateContext.
struct DataPipeline {
  const ResolvedConfig& config;
  bool wrap_cache;
  std::shared_ptr<Dataset> raw;   ///< the dataset plugin's own object
  std::shared_ptr<Dataset> data;  ///< what everything reads: the dataset, or the cache's wrapper of it

  template <class I>
  void created(const Slot<I>& slot) {
    if constexpr (std::is_same_v<I, Dataset>) {
      raw = slot.handed_over();
      data = std::make_shared<GuardedDataset>(slot);
    } else if constexpr (std::is_same_v<I, Cache>) {
      if (!wrap_cache) return;
      std::shared_ptr<Dataset> wrapped = slot.template call<&Cache::wrap>(raw);
      // Samples now come from the cache's dataset, unless it returned the dataset itself.
      if (wrapped != raw) data = std::make_shared<GuardedDataset>(Slot<Dataset>(wrapped, slot.who()));
      check_dataset(*data, config.one(Kind::Dataset).feature->info.name);
    }
  }
  /// The dataset a kind's factory gets: the cache wraps the raw dataset, everything else reads the data.
  std::shared_ptr<Dataset> for_factory(Kind kind) const { return kind == Kind::Cache ? raw : data; }
};

}  // namespace

CreatedPlugins create_run_plugins(const Registry& registry, const ResolvedConfig& config, HostRunContext& context,
                                  Slot<Communicator> communicator, bool wrap_cache) {
  PluginSlots slots;
  if (communicator) slots.communicator.add(std::move(communicator));
  DataPipeline pipeline{config, wrap_cache, nullptr, nullptr};
  for (const KindInfo& info : kind_table()) {
    if (info.creation != Creation::AtStart || info.kind == Kind::Communicator) continue;  // created by the caller
    for (const PluginChoice& choice : config.many(info.kind)) {
      const CreateContext ctx{choice.params, context, pipeline.for_factory(info.kind)};
      visit_kind(info.kind, [&]<class I>() {
        Slot<I> slot(registry.create<I>(*choice.feature, ctx), PluginRef::of(*choice.feature));
        pipeline.created(slot);
        slots.of<I>().add(std::move(slot));
      });
    }
  }

  CreatedPlugins out;
  RunPlugins& p = out.run;
  p.dataset = std::static_pointer_cast<GuardedDataset>(pipeline.data);
  p.precision = slots.precision[0];
  p.accumulation = slots.accumulation[0];
  if (!slots.communicator.empty()) p.communicator = slots.communicator[0];
  // The many-table kinds' slots are in file order, like their choices (whose pipeline, id and table the
  // pipelines and the state keys need).
  const std::vector<PluginChoice>& augmentations = config.many(Kind::Augmentation);
  for (size_t i = 0; i < slots.augmentation.size(); ++i)
    p.augmentations.add(augmentations[i].pipeline, slots.augmentation[i].who(), slots.augmentation[i].handed_over());
  const std::vector<PluginChoice>& callbacks = config.many(Kind::Callback);
  for (size_t i = 0; i < slots.callback.size(); ++i)
    p.callbacks.add(slots.callback[i].who(), slots.callback[i].handed_over(), callbacks[i].id, callbacks[i].table,
                    params_text(callbacks[i].params));
  const std::vector<PluginChoice>& sinks = config.many(Kind::MetricSink);
  for (size_t i = 0; i < slots.metric_sink.size(); ++i)
    p.metrics.add(slots.metric_sink[i].who(), slots.metric_sink[i].handed_over(), sinks[i].id, sinks[i].table,
                  params_text(sinks[i].params));
  out.driver = slots.self_training[0];
  return out;
}

}  // namespace loom::host
