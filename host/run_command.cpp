// `loom run` and `loom check`: parse → load plugins → validate everything → create plugins → only then
// touch the disk (run directory) → drive the self-training plugin → test → summary.
#include "commands.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "metrics.h"
#include "registry.h"
#include "resolve.h"
#include "run_context.h"
#include "trainer.h"

#include <loom/cache.h>
#include <loom/self_training.h>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/headeronly/version.h>
#include <torch/utils.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <ctime>
#include <iostream>
#include <thread>

namespace loom::host {

namespace fs = std::filesystem;

namespace {

void on_signal(int) {
  request_stop();
  // A second signal ends the process at once.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

void report_config_errors(const ConfigErrors& e) {
  for (const auto& err : e.errors()) std::cerr << err.str() << '\n';
  std::cerr << "loom: config rejected (" << e.errors().size() << (e.errors().size() == 1 ? " error" : " errors")
            << "); nothing was created\n";
}

void warn_failures(const Registry& registry, Logger& log) {
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

/// <output_dir>/<name>/<timestamp>[-N]: a fresh directory, never an existing one.
fs::path new_run_dir(const Params& run) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  const fs::path base = fs::path(run.str("output_dir")) / run.str("name");
  fs::path dir = base / stamp;
  for (int i = 2; fs::exists(dir); ++i) dir = base / (std::string(stamp) + "-" + std::to_string(i));
  return dir;
}

template <class T>
std::shared_ptr<T> create_plugin(const Registry& registry, const ResolvedConfig& config, Kind kind, RunContext& context,
                                 std::shared_ptr<Dataset> dataset) {
  const PluginChoice& choice = config.plugins.at(kind);
  return registry.create<T>(*choice.feature, CreateContext{choice.params, context, std::move(dataset)});
}

void check_dataset(const Dataset& d, const std::string& name) {
  const SampleSpec spec = d.spec();
  if (spec.num_classes < 2 || spec.shape.empty())
    throw PluginError("dataset plugin '" + name + "' reports an invalid spec (classes " +
                      std::to_string(spec.num_classes) + ", " + std::to_string(spec.shape.size()) + "-D samples)");
  if (d.indices(Split::Labeled).numel() == 0)
    throw PluginError("dataset plugin '" + name + "' has an empty labeled split: nothing to train on");
}

std::string describe_plugins(const ResolvedConfig& c) {
  std::string s;
  for (const auto& [kind, choice] : c.plugins)
    s += std::string(s.empty() ? "" : ", ") + std::string(to_string(kind)) + "=" + choice.feature->info.name;
  return s;
}

}  // namespace

int check_command(const fs::path& config_file, const std::vector<std::string>& overrides) {
  HostLogger logger;
  Registry registry;
  try {
    const ResolvedConfig config = load_and_validate(config_file, overrides, registry, logger);
    std::cout << config_file.string() << ": ok (" << describe_plugins(config) << ")\n";
    return 0;
  } catch (const ConfigErrors& e) {
    report_config_errors(e);
    return 2;
  }
}

int run_command(const RunOptions& options) {
  HostLogger logger;
  logger.set_verbose(options.verbose);
  Registry registry;
  const bool resuming = !options.resume.empty();
  fs::path config_file = options.config;
  if (resuming) {
    if (!options.overrides.empty()) {
      std::cerr << "loom: --set cannot be combined with --resume: a resumed run continues with its saved "
                   "config.resolved.toml\n";
      return 2;
    }
    if (!fs::is_regular_file(options.resume / "checkpoint.pt")) {
      std::cerr << "loom: " << (options.resume / "checkpoint.pt").string()
                << " does not exist: nothing to resume (pass a run directory written by `loom run`)\n";
      return 2;
    }
    config_file = options.resume / "config.resolved.toml";
  }

  ResolvedConfig config;
  try {
    config = load_and_validate(config_file, options.overrides, registry, logger);
  } catch (const ConfigErrors& e) {
    report_config_errors(e);
    return 2;
  }

  try {
    const int64_t requested_threads = config.run.integer("threads");
    const int threads = requested_threads > 0 ? static_cast<int>(requested_threads)
                                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(threads);
    CpuMemoryTracker::install();  // before any data is loaded: peak_memory_mb and micro-batch probes
    const c10::Device device = resolve_device(config.run.str("device"));
    const uint64_t seed = static_cast<uint64_t>(config.run.integer("seed"));
    torch::manual_seed(seed);
    const fs::path run_dir = resuming ? fs::absolute(options.resume) : new_run_dir(config.run);
    HostRunContext context(logger, device, seed, threads, run_dir, config.run.str("cache_dir"));

    // Every plugin is created (and every dataset read) before anything is written.
    RunPlugins plugins;
    const std::string dataset_name = config.plugins.at(Kind::Dataset).feature->info.name;
    auto raw_dataset = create_plugin<Dataset>(registry, config, Kind::Dataset, context, nullptr);
    auto cache = create_plugin<Cache>(registry, config, Kind::Cache, context, raw_dataset);
    try {
      plugins.dataset = cache->wrap(raw_dataset);
    } catch (const std::exception& e) {
      throw PluginError("cache plugin '" + config.plugins.at(Kind::Cache).feature->info.name + "' failed in wrap: " + e.what());
    }
    check_dataset(*plugins.dataset, dataset_name);
    plugins.precision = create_plugin<Precision>(registry, config, Kind::Precision, context, plugins.dataset);
    plugins.accumulation = create_plugin<Accumulation>(registry, config, Kind::Accumulation, context, plugins.dataset);
    auto driver = create_plugin<SelfTraining>(registry, config, Kind::SelfTraining, context, plugins.dataset);

    std::optional<CheckpointState> resume;
    if (resuming) {
      resume = read_checkpoint_state(run_dir / "checkpoint.pt");
    } else {
      fs::create_directories(run_dir.parent_path());
      fs::create_directory(run_dir);
      std::ostringstream resolved;
      resolved << "# Written by loom from " << config.file.string() << " (defaults filled in).\n"
               << "# Resume with: loom run --resume " << run_dir.string() << "\n\n"
               << config.to_toml() << '\n';
      std::ofstream(run_dir / "config.resolved.toml") << resolved.str();
    }
    logger.add_file(run_dir / "loom.log");
    logger.info(std::string(resuming ? "resuming" : "run") + " " + run_dir.string());
    logger.info("loom " LOOM_SDK_VERSION ", LibTorch " TORCH_VERSION ", device " + device.str() + ", " +
                std::to_string(threads) + " threads, seed " + std::to_string(seed) + "; " + describe_plugins(config));

    MetricsWriter metrics(run_dir / "metrics.jsonl");
    Trainer trainer(config, registry, context, plugins, metrics, std::move(resume));
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    const auto start = std::chrono::steady_clock::now();
    std::shared_ptr<Model> model;
    try {
      model = driver->run(trainer);
    } catch (const Interrupted& e) {
      logger.warn(std::string(e.what()) + ". Resume with: loom run --resume " + run_dir.string());
      return 130;
    } catch (const PluginError&) {
      throw;
    } catch (const std::exception& e) {
      throw PluginError("self_training plugin '" + config.plugins.at(Kind::SelfTraining).feature->info.name +
                        "' failed: " + e.what());
    }
    if (!model) throw PluginError("self_training plugin returned no model");

    const EvalResult test = trainer.evaluate(*model, trainer.split(Split::Test));
    write_model(run_dir / "model.pt", *model);
    nlohmann::json summary;
    summary["test_accuracy"] = test.samples ? nlohmann::json(test.accuracy) : nlohmann::json(nullptr);
    summary["test_loss"] = test.samples ? nlohmann::json(test.loss) : nlohmann::json(nullptr);
    summary["test_samples"] = test.samples;
    summary["wall_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    summary["epochs"] = trainer.epochs_run();
    summary["samples_per_second"] = trainer.samples_per_second();
    summary["threads"] = threads;
    summary["device"] = device.str();
    summary["run_dir"] = run_dir.string();
    write_json_file(run_dir / "summary.json", summary);
    if (test.samples)
      logger.info("test accuracy " + std::to_string(test.accuracy) + ", test loss " + std::to_string(test.loss));
    std::cout << "run directory: " << run_dir.string() << "\n"
              << "metrics: " << (run_dir / "metrics.jsonl").string() << "\n"
              << "summary: " << (run_dir / "summary.json").string() << "\n";
    return 0;
  } catch (const std::exception& e) {
    logger.error(e.what());
    return 1;
  }
}

}  // namespace loom::host
