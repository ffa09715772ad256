// `loom check [--deep] CONFIG`: everything `loom run` checks before it touches the disk — the config against
// every schema, and with --deep every plugin created (the data read, no cache built) — and nothing written.
#include "cli/commands.h"
#include "cli/setup.h"
#include "config/resolve.h"
#include "plugins/registry.h"
#include "plugins/run_context.h"
#include "plugins/run_plugins.h"

#include <iostream>

namespace loom::host {

namespace fs = std::filesystem;

int check_command(const fs::path& config_file, const std::vector<std::string>& overrides, bool deep) {
  HostLogger logger;
  Registry registry;
  ResolvedConfig config;
  try {
    config = load_and_validate(config_file, overrides, registry, logger);
  } catch (const ConfigErrors& e) {
    report_config_errors(e);
    return 2;
  }
  std::vector<std::string> deferred;
  const std::string device = config.run.str("device");
  if (device != "auto" && device != "cpu") deferred.push_back("device \"" + device + "\" exists on the machine that runs it");
  if (config.one(Kind::Communicator).feature->info.name != "none") deferred.push_back("the communicator's ranks can connect");
  if (deep) {
    try {
      const int threads = apply_threads(config.run);
      HostRunContext context(logger, resolve_device(device), static_cast<uint64_t>(config.run.integer("seed")), threads,
                             fs::path(), config.run.str("cache_dir"));
      auto plugins = create_run_plugins(registry, config, context, Slot<Communicator>(), /*wrap_cache=*/false);
      check_dataset(*plugins.run.dataset, config.one(Kind::Dataset).feature->info.name);
      const PluginChoice& model = config.one(Kind::Model);
      registry.create<Model>(*model.feature, {model.params, context, plugins.run.dataset});
      if (config.student_model)
        registry.create<Model>(*config.student_model->feature, {config.student_model->params, context, plugins.run.dataset});
    } catch (const std::exception& e) {
      std::cerr << config_file.string() << ": error: " << error_text(e) << "\n";
      return 1;
    }
    deferred.push_back("the cache builds (loom cache build checks that)");
  }
  std::cout << config_file.string() << ": ok (" << describe_plugins(config) << ")" << (deep ? ", every plugin created" : "")
            << "\n";
  for (const auto& d : deferred) std::cout << "  checked when it runs: " << d << "\n";
  return 0;
}

}  // namespace loom::host
