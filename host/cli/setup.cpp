#include "cli/setup.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <iostream>
#include <thread>

namespace loom::host {

namespace fs = std::filesystem;

void report_config_errors(const ConfigErrors& e) {
  for (const auto& err : e.errors()) std::cerr << err.str() << '\n';
  std::cerr << "loom: config rejected (" << e.errors().size() << (e.errors().size() == 1 ? " error" : " errors")
            << "); nothing was created\n";
}

void warn_failures(const Registry& registry, Logger& log) {
  for (const auto& dir : registry.missing())
    log.warn("plugin directory " + dir.string() + " does not exist (from LOOM_PLUGIN_PATH or [run] plugin_paths); skipped");
  for (const auto& f : registry.failures())
    log.warn("plugin library " + f.file.string() + " was not loaded: " + f.reason);
}

/// Loads the config and the plugins and validates everything; nothing is created on disk.
ResolvedConfig load_and_validate(const fs::path& file, const std::vector<std::string>& overrides, Registry& registry,
                                 Logger& log) {
  Config config = Config::load(file);
  std::vector<ConfigError> errors;
  for (const auto& o : overrides) config.apply_override(o, errors);
  if (!errors.empty()) throw ConfigErrors(std::move(errors));
  registry.scan(plugin_search_path(early_plugin_paths(config)));
  warn_failures(registry, log);
  return resolve(config, registry);
}

c10::Device resolve_device(const std::string& requested) {
  if (requested == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  c10::Device device(requested);
  if (device.is_cuda()) {
    if (!torch::cuda::is_available())
      throw std::runtime_error("[run] device = \"" + requested +
                               "\" but no CUDA device is available here; use device = \"cpu\" or \"auto\"");
    const int64_t index = device.has_index() ? device.index() : 0;
    if (index >= static_cast<int64_t>(torch::cuda::device_count()))
      throw std::runtime_error("[run] device = \"" + requested + "\" but only " +
                               std::to_string(torch::cuda::device_count()) + " CUDA device(s) exist");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return device;
}

void check_dataset(const Dataset& d, const std::string& name) {
  const SampleSpec spec = d.spec();
  if (spec.num_classes < 2 || spec.shape.empty())
    throw PluginError("dataset plugin '" + name + "' reports an invalid spec (classes " +
                      std::to_string(spec.num_classes) + ", " + std::to_string(spec.shape.size()) + "-D samples)");
  if (d.indices(Split::Labeled).numel() == 0)
    throw PluginError("dataset plugin '" + name + "' has an empty labeled split: nothing to train on");
}

int apply_threads(const Params& run, int local_ranks) {
  const int64_t requested = run.integer("threads");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = requested > 0 ? static_cast<int>(requested) : std::max(1, cores / std::max(1, local_ranks));
  at::set_num_threads(threads);
  return threads;
}

Params default_params(const Feature& feature) {
  std::map<std::string, Value> values;
  for (const ParamSpec& spec : feature.info.params)
    if (spec.default_value) values[spec.name] = *spec.default_value;
  return Params(std::move(values));
}

std::string describe_plugins(const ResolvedConfig& c) {
  std::string s;
  for (const auto& [kind, list] : c.plugins) {
    if (list.empty()) continue;
    std::string names;
    for (const PluginChoice& choice : list) names += (names.empty() ? "" : "+") + choice.feature->info.name;
    s += std::string(s.empty() ? "" : ", ") + std::string(to_string(kind)) + "=" + names;
  }
  return s;
}

}  // namespace loom::host
