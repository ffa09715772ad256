// What every command that creates plugins does first: load and validate the config, load the plugin
// libraries, apply the thread count, resolve the device, create plugins with context in their errors.
// Shared by `loom run` (run_command.cpp) and `loom cache` (cache_command.cpp).
#pragma once

#include "config/config.h"
#include "cli/log.h"
#include "plugins/registry.h"
#include "config/resolve.h"

#include <loom/context.h>
#include <loom/dataset.h>

#include <c10/core/Device.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace loom::host {

/// Prints every config error with its position, then the summary line.
void report_config_errors(const ConfigErrors& e);

/// "dataset=fashion-mnist, cache=none, …, callback=ema+best-checkpoint": the plugins a config chose.
std::string describe_plugins(const ResolvedConfig& config);

/// Warns about each plugin library the registry refused.
void warn_failures(const Registry& registry, Logger& log);

/// Loads the config and the plugins and validates everything; nothing is created on disk.
ResolvedConfig load_and_validate(const std::filesystem::path& file, const std::vector<std::string>& overrides,
                                 Registry& registry, Logger& log);

/// Applies [run] threads (0: the cores divided among the `local_ranks` processes of this host) to
/// LibTorch's intra-op pool; returns the count.
int apply_threads(const Params& run, int local_ranks = 1);

/// [run] device with "auto" resolved; a clear error when the device does not exist here.
c10::Device resolve_device(const std::string& requested);

template <class T>
std::shared_ptr<T> create_plugin(const Registry& registry, const ResolvedConfig& config, Kind kind, RunContext& context,
                                 std::shared_ptr<Dataset> dataset) {
  const PluginChoice& choice = config.one(kind);
  return registry.create<T>(*choice.feature, CreateContext{choice.params, context, std::move(dataset)});
}

/// Sanity checks of a created dataset (class count, shape, a labeled split to train on).
void check_dataset(const Dataset& d, const std::string& name);

/// A feature's params with every default filled in (for plugins created outside a config).
Params default_params(const Feature& feature);

}  // namespace loom::host
