// `loom run` and `loom check`: parse → load plugins → validate everything → create plugins → only then
// touch the disk (run directory) → drive the self-training plugin → test → summary.
#include "cli/commands.h"
#include "config/config.h"
#include "cli/log.h"
#include "loop/memory.h"
#include "state/metrics.h"
#include "plugins/registry.h"
#include "config/resolve.h"
#include "plugins/run_context.h"
#include "cli/setup.h"
#include "state/run_directory.h"
#include "plugins/run_plugins.h"
#include "state/durable_file.h"
#include "loop/trainer.h"

#include <loom/cache.h>
#include <loom/communicator.h>
#include <loom/self_training.h>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/headeronly/version.h>
#include <torch/utils.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <ctime>
#include <iostream>
#include <thread>

namespace loom::host {

namespace fs = std::filesystem;

namespace {

/// A record of the run's sinks outside the epoch loop.
MetricRecord event(std::string stage, std::map<std::string, MetricValue> values) {
  MetricRecord r;
  r.kind = RecordKind::Event;
  r.stage = std::move(stage);
  r.values = std::move(values);
  return r;
}

void on_signal(int signal) {
  request_stop(signal);
  // A second signal ends the process at once.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

/// The run's device given the communicator: CUDA device local_rank for a CUDA communicator; a CPU
/// communicator refuses a CUDA run (its collectives take CPU tensors).
c10::Device distributed_device(c10::Device requested, const Slot<Communicator>& comm, const ResolvedConfig& config) {
  if (comm.call<&Communicator::world_size>() == 1 && config.one(Kind::Communicator).feature->info.name == "none") return requested;
  const std::string name = config.one(Kind::Communicator).feature->info.name;
  if (comm.call<&Communicator::device_type>() == c10::DeviceType::CUDA) {
    if (!requested.is_cuda())
      throw std::runtime_error("[communicator] plugin = \"" + name + "\" all-reduces CUDA tensors, but [run] device is " +
                               requested.str() + "; set device = \"cuda\" (or \"auto\" on a GPU machine), or use the mpi communicator on CPUs");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(comm.call<&Communicator::local_rank>()));
  }
  if (!requested.is_cpu())
    throw std::runtime_error("[communicator] plugin = \"" + name + "\" all-reduces CPU tensors, but [run] device is " +
                             requested.str() + "; set device = \"cpu\", or use [communicator] plugin = \"nccl\" for GPUs");
  return requested;
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

}  // namespace

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
    std::error_code ec;
    if (RunDirectory::discard_if_never_started(options.resume)) {
      std::cerr << "loom: " << options.resume.string() << " is a run that never started: it was stopped before it wrote "
                << "config.resolved.toml, so there is nothing to resume (its empty directory is removed now). Start it "
                << "again with: loom run CONFIG\n";
      return 2;
    }
    // Only whether it is there: what it is (a FIFO, a device) is Config::load's to check and report.
    if (!fs::exists(fs::symlink_status(options.resume / "config.resolved.toml", ec))) {
      std::cerr << "loom: " << options.resume.string()
                << " is not a run directory (no config.resolved.toml): pass a directory written by `loom run`\n";
      return 2;
    }
    if (!fs::exists(options.resume / "checkpoint.pt", ec) && !fs::exists(options.resume / "checkpoint.prev.pt", ec)) {
      std::cerr << "loom: " << options.resume.string() << " never reached its first checkpoint (the run stopped before "
                << "the end of its first epoch): there is nothing to resume. Start it over with: loom run "
                << (options.resume / "config.resolved.toml").string() << "\n";
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

  const uint64_t seed = static_cast<uint64_t>(config.run.integer("seed"));
  // The communicator comes first: rank and local size decide the device, the threads and who writes.
  HostRunContext boot_context(logger, c10::Device(c10::kCPU), seed, 1, fs::path(), config.run.str("cache_dir"));
  Slot<Communicator> communicator;
  try {
    const PluginChoice& choice = config.one(Kind::Communicator);
    communicator = Slot<Communicator>(registry.create<Communicator>(*choice.feature, {choice.params, boot_context, nullptr}),
                                      PluginRef::of(*choice.feature));
  } catch (const std::exception& e) {
    logger.error(error_text(e));
    return 1;
  }
  int rank = 0, world = 1;
  try {
    rank = communicator.call<&Communicator::rank>(), world = communicator.call<&Communicator::world_size>();
  } catch (const std::exception& e) {
    logger.error(error_text(e));
    return 1;
  }
  const bool primary = rank == 0;
  ScratchDir scratch;  // a rank other than 0 writes nothing into the run directory
  if (!primary) logger.set_secondary_rank(rank);

  try {
    const int threads = apply_threads(config.run, communicator.call<&Communicator::local_size>());
    CpuMemoryTracker::install();  // before any data is loaded: peak_memory_mb and micro-batch probes
    const c10::Device device = distributed_device(resolve_device(config.run.str("device")), communicator, config);
    torch::manual_seed(seed);
    // Rank 0 owns the run directory (created atomically, locked for the life of this process); a run that
    // fails before writing anything removes it again.
    std::optional<RunDirectory> owned;
    if (primary) owned.emplace(resuming ? RunDirectory::open(fs::absolute(options.resume)) : RunDirectory::create(config.run));
    const fs::path run_dir = resuming ? fs::absolute(options.resume) : primary ? owned->path() : fs::path();
    const fs::path write_dir = primary ? run_dir : scratch.create(rank);
    HostRunContext context(logger, device, seed, threads, write_dir, config.run.str("cache_dir"));

    // Every plugin is created (and every dataset read) before anything is written.
    CreatedPlugins created = [&] {
      try {
        return create_run_plugins(registry, config, context, communicator, /*wrap_cache=*/true);
      } catch (...) {
        if (owned && !resuming) owned->discard_if_unused();
        throw;
      }
    }();
    RunPlugins& plugins = created.run;
    plugins.metrics.set_writing(primary);
    std::shared_ptr<CheckpointReader> resume;
    if (resuming) {
      // Verified against its checksum and read once; a damaged latest falls back to the previous generation.
      // The trainer loads the callbacks' and sinks' state from it first (its StatePhase::Run providers).
      resume = open_checkpoint(run_dir / "checkpoint.pt", logger);
    }
    if (!plugins.callbacks.best_model() && config.run.str("test_on") == "best") {
      if (owned && !resuming) owned->discard_if_unused();
      throw std::runtime_error("[run] test_on = \"best\" needs a [[callback]] that keeps a best model (e.g. plugin = "
                               "\"best-checkpoint\"); add one, or set test_on = \"last\"");
    }
    if (!resuming && primary) {
      std::ostringstream resolved;
      resolved << "# Written by loom from " << config.file.string() << " (defaults filled in).\n"
               << "# Resume with: loom run --resume " << run_dir.string() << "\n\n"
               << config.to_toml() << '\n';
      try {
        write_file_atomically(run_dir / "config.resolved.toml", resolved.str());
      } catch (...) {
        owned->discard_if_unused();
        throw;
      }
    }
    if (primary) logger.add_file(run_dir / "loom.log");
    logger.info(std::string(resuming ? "resuming" : "run") + " " + run_dir.string());
    logger.info("loom " LOOM_SDK_VERSION ", LibTorch " TORCH_VERSION ", device " + device.str() + ", " +
                std::to_string(threads) + " threads, seed " + std::to_string(seed) +
                (world > 1 ? ", " + std::to_string(world) + " ranks" : std::string()) + "; " + describe_plugins(config));

    const auto counters = plugins.dataset->counters();
    if (!resuming && !counters.empty()) {  // a resumed run has this record already
      std::map<std::string, MetricValue> values;
      for (const auto& [k, v] : counters) values["dataset/" + k] = v;
      plugins.metrics.write(event("setup", values));
    }
    Trainer trainer(config, registry, context, plugins, resume, resuming || primary ? run_dir : write_dir);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    std::shared_ptr<Model> model;
    try {
      model = created.driver.call<&SelfTraining::run>(trainer);
    } catch (const Interrupted& e) {
      plugins.metrics.flush();
      if (primary) logger.warn(std::string(e.what()) + ". Resume with: loom run --resume " + run_dir.string());
      return stopped_exit_code();  // 130 after SIGINT, 143 after SIGTERM
    }
    if (!model) throw PluginError(created.driver.who().describe() + " returned no model from run");

    if (trainer.options().test_on_best) {
      const fs::path best = *plugins.callbacks.best_model();
      if (!fs::exists(best))
        throw std::runtime_error("[run] test_on = \"best\": " + best.string() + " was never written (no validation split?)");
      read_model(best, *model);
      logger.info("testing the best weights: " + best.string());
    }
    const EvalResult test = trainer.evaluate(*model, trainer.split(Split::Test));  // collective: every rank
    if (!primary) return 0;
    write_model(run_dir / "model.pt", *model);
    if (test.samples)
      plugins.metrics.write(event("test", {{"test_loss", test.loss}, {"test_accuracy", test.accuracy}, {"test_samples", test.samples}}));
    plugins.metrics.flush();
    nlohmann::json summary;
    summary["test_accuracy"] = test.samples ? nlohmann::json(test.accuracy) : nlohmann::json(nullptr);
    summary["test_loss"] = test.samples ? nlohmann::json(test.loss) : nlohmann::json(nullptr);
    summary["test_samples"] = test.samples;
    summary["test_on"] = config.run.str("test_on");
    summary["wall_seconds"] = trainer.wall_seconds();
    summary["epochs"] = trainer.epochs_run();
    summary["optimizer_steps"] = trainer.optimizer_steps_run();
    summary["samples_per_second"] = trainer.samples_per_second();
    summary["threads"] = threads;
    summary["device"] = device.str();
    summary["world_size"] = world;
    summary["run_dir"] = run_dir.string();
    for (const auto& [k, v] : trainer.summary_entries()) summary[k] = to_json(v);
    for (const auto& [k, v] : counters) summary["dataset/" + k] = v;
    write_json_file(run_dir / "summary.json", summary);
    if (test.samples)
      logger.info("test accuracy " + std::to_string(test.accuracy) + ", test loss " + std::to_string(test.loss));
    std::cout << "run directory: " << run_dir.string() << "\n"
              << "metrics: " << (run_dir / "metrics.jsonl").string() << "\n"
              << "summary: " << (run_dir / "summary.json").string() << "\n";
    return 0;
  } catch (const std::exception& e) {
    logger.error(error_text(e));
    if (world > 1) {
      try {
        communicator.call<&Communicator::abort>(error_text(e));  // the other ranks fail now instead of at their timeout
      } catch (const std::exception&) {
      }
    }
    return 1;
  }
}

}  // namespace loom::host
