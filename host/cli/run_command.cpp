// `loom run CONFIG` and `loom run --resume DIR`, as a list of steps: pick the config (a resume checks its
// run directory first) → validate it → boot the communicator (rank, world, device, threads) → open the
// run directory → create every plugin → only then write (config.resolved.toml, loom.log) → drive the
// self-training plugin → test → model.pt and summary.json. A new run that fails before its config is
// written leaves no directory behind (NewRunGuard); any failure on one rank aborts the others.
#include "cli/commands.h"
#include "cli/log.h"
#include "cli/setup.h"
#include "cli/world.h"
#include "config/config.h"
#include "config/resolve.h"
#include "loop/memory.h"
#include "loop/trainer.h"
#include "plugins/registry.h"
#include "plugins/run_context.h"
#include "plugins/run_plugins.h"
#include "state/durable_file.h"
#include "state/metrics.h"
#include "state/run_directory.h"

#include <loom/communicator.h>
#include <loom/self_training.h>

#include <torch/headeronly/version.h>
#include <torch/utils.h>

#include <csignal>
#include <iostream>
#include <optional>
#include <sstream>

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

/// The config to run: the given file, or a resumed run's config.resolved.toml once the directory is known
/// to hold a run that can continue. nullopt after printing why not (exit 2).
std::optional<fs::path> config_to_run(const RunOptions& options) {
  if (options.resume.empty()) return options.config;
  if (!options.overrides.empty()) {
    std::cerr << "loom: --set cannot be combined with --resume: a resumed run continues with its saved "
                 "config.resolved.toml\n";
    return std::nullopt;
  }
  std::error_code ec;
  if (RunDirectory::discard_if_never_started(options.resume)) {
    std::cerr << "loom: " << options.resume.string() << " is a run that never started: it was stopped before it wrote "
              << "config.resolved.toml, so there is nothing to resume (its empty directory is removed now). Start it "
              << "again with: loom run CONFIG\n";
    return std::nullopt;
  }
  // Only whether it is there: what it is (a FIFO, a device) is Config::load's to check and report.
  if (!fs::exists(fs::symlink_status(options.resume / "config.resolved.toml", ec))) {
    std::cerr << "loom: " << options.resume.string()
              << " is not a run directory (no config.resolved.toml): pass a directory written by `loom run`\n";
    return std::nullopt;
  }
  if (!fs::exists(options.resume / "checkpoint.pt", ec) && !fs::exists(options.resume / "checkpoint.prev.pt", ec)) {
    std::cerr << "loom: " << options.resume.string() << " never reached its first checkpoint (the run stopped before "
              << "the end of its first epoch): there is nothing to resume. Start it over with: loom run "
              << (options.resume / "config.resolved.toml").string() << "\n";
    return std::nullopt;
  }
  return options.resume / "config.resolved.toml";
}

/// Removes a new run's directory again when the run fails before it wrote its config; keep() once it has.
class NewRunGuard {
 public:
  explicit NewRunGuard(RunDirectory* dir) : dir_(dir) {}
  ~NewRunGuard() {
    if (dir_) dir_->discard_if_unused();
  }
  NewRunGuard(const NewRunGuard&) = delete;
  NewRunGuard& operator=(const NewRunGuard&) = delete;
  void keep() { dir_ = nullptr; }

 private:
  RunDirectory* dir_;
};

void write_resolved_config(const ResolvedConfig& config, const fs::path& run_dir) {
  std::ostringstream resolved;
  resolved << "# Written by loom from " << config.file.string() << " (defaults filled in).\n"
           << "# Resume with: loom run --resume " << run_dir.string() << "\n\n"
           << config.to_toml() << '\n';
  write_file_atomically(run_dir / "config.resolved.toml", resolved.str());
}

/// One run from its directory on: the steps after the communicator, each a method.
class RunSession {
 public:
  RunSession(const RunOptions& options, const ResolvedConfig& config, const Registry& registry, HostLogger& logger,
             World& world)
      : options_(options), config_(config), registry_(registry), logger_(logger), world_(world),
        resuming_(!options.resume.empty()), seed_(static_cast<uint64_t>(config.run.integer("seed"))) {}

  /// Threads, device, and the run directory: rank 0 owns it (created atomically, locked for the life of
  /// this process); the other ranks write into a scratch directory.
  void open_run_directory() {
    threads_ = apply_threads(config_.run, world_.communicator.call<&Communicator::local_size>());
    CpuMemoryTracker::install();  // before any data is loaded: peak_memory_mb and micro-batch probes
    device_ = distributed_device(resolve_device(config_.run.str("device")), world_.communicator, config_);
    torch::manual_seed(seed_);
    if (world_.primary())
      owned_.emplace(resuming_ ? RunDirectory::open(fs::absolute(options_.resume)) : RunDirectory::create(config_.run));
    run_dir_ = resuming_ ? fs::absolute(options_.resume) : world_.primary() ? owned_->path() : fs::path();
    write_dir_ = world_.primary() ? run_dir_ : scratch_.create(world_.rank);
    context_.emplace(logger_, device_, seed_, threads_, write_dir_, config_.run.str("cache_dir"));
    guard_.emplace(owned_ && !resuming_ ? &*owned_ : nullptr);
  }

  /// Every plugin is created (and every dataset read) before anything is written.
  void create_plugins() {
    created_ = create_run_plugins(registry_, config_, *context_, world_.communicator, /*wrap_cache=*/true);
    plugins().metrics.set_writing(world_.primary());
    // Verified against its checksum and read once; a damaged latest falls back to the previous generation.
    // The trainer loads the callbacks' and sinks' state from it first (its StatePhase::Run providers).
    if (resuming_) resume_ = open_checkpoint(run_dir_ / "checkpoint.pt", logger_);
    if (!plugins().callbacks.best_model() && config_.run.str("test_on") == "best")
      throw std::runtime_error("[run] test_on = \"best\" needs a [[callback]] that keeps a best model (e.g. plugin = "
                               "\"best-checkpoint\"); add one, or set test_on = \"last\"");
  }

  /// The first writes: config.resolved.toml (a new run's directory is kept from here on) and loom.log.
  void start_writing() {
    if (!resuming_ && world_.primary()) write_resolved_config(config_, run_dir_);
    guard_->keep();
    if (world_.primary()) logger_.add_file(run_dir_ / "loom.log");
    logger_.info(std::string(resuming_ ? "resuming" : "run") + " " + run_dir_.string());
    logger_.info("loom " LOOM_SDK_VERSION ", LibTorch " TORCH_VERSION ", device " + device_.str() + ", " +
                 std::to_string(threads_) + " threads, seed " + std::to_string(seed_) +
                 (world_.size > 1 ? ", " + std::to_string(world_.size) + " ranks" : std::string()) + "; " +
                 describe_plugins(config_));
    counters_ = plugins().dataset->counters();
    if (!resuming_ && !counters_.empty()) {  // a resumed run has this record already
      std::map<std::string, MetricValue> values;
      for (const auto& [k, v] : counters_) values["dataset/" + k] = v;
      plugins().metrics.write(event("setup", values));
    }
  }

  /// Runs the self-training plugin. nullopt: it returned its model; else the exit code of a stop
  /// (SIGINT 130, SIGTERM 143) after which the checkpoint is written.
  std::optional<int> drive() {
    trainer_.emplace(config_, registry_, *context_, plugins(), resume_,
                     resuming_ || world_.primary() ? run_dir_ : write_dir_);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    try {
      model_ = created_->driver.call<&SelfTraining::run>(*trainer_);
    } catch (const Interrupted& e) {
      plugins().metrics.flush();
      if (world_.primary()) logger_.warn(std::string(e.what()) + ". Resume with: loom run --resume " + run_dir_.string());
      return stopped_exit_code();
    }
    if (!model_) throw PluginError(created_->driver.who().describe() + " returned no model from run");
    return std::nullopt;
  }

  /// The test split on the final (or best) weights, on every rank; then rank 0 writes the results.
  void test_and_summarize() {
    if (trainer_->options().test_on_best) {
      const fs::path best = *plugins().callbacks.best_model();
      if (!fs::exists(best))
        throw std::runtime_error("[run] test_on = \"best\": " + best.string() + " was never written (no validation split?)");
      read_model(best, *model_);
      logger_.info("testing the best weights: " + best.string());
    }
    const EvalResult test = trainer_->evaluate(*model_, trainer_->split(Split::Test));  // collective: every rank
    if (!world_.primary()) return;
    write_model(run_dir_ / "model.pt", *model_);
    if (test.samples)
      plugins().metrics.write(
          event("test", {{"test_loss", test.loss}, {"test_accuracy", test.accuracy}, {"test_samples", test.samples}}));
    plugins().metrics.flush();
    write_summary(test);
    if (test.samples)
      logger_.info("test accuracy " + std::to_string(test.accuracy) + ", test loss " + std::to_string(test.loss));
    std::cout << "run directory: " << run_dir_.string() << "\n"
              << "metrics: " << (run_dir_ / "metrics.jsonl").string() << "\n"
              << "summary: " << (run_dir_ / "summary.json").string() << "\n";
  }

 private:
  RunPlugins& plugins() { return created_->run; }

  void write_summary(const EvalResult& test) {
    nlohmann::json summary;
    summary["test_accuracy"] = test.samples ? nlohmann::json(test.accuracy) : nlohmann::json(nullptr);
    summary["test_loss"] = test.samples ? nlohmann::json(test.loss) : nlohmann::json(nullptr);
    summary["test_samples"] = test.samples;
    summary["test_on"] = config_.run.str("test_on");
    summary["wall_seconds"] = trainer_->wall_seconds();
    summary["epochs"] = trainer_->epochs_run();
    summary["optimizer_steps"] = trainer_->optimizer_steps_run();
    summary["samples_per_second"] = trainer_->samples_per_second();
    summary["threads"] = threads_;
    summary["device"] = device_.str();
    summary["world_size"] = world_.size;
    summary["run_dir"] = run_dir_.string();
    for (const auto& [k, v] : trainer_->summary_entries()) summary[k] = to_json(v);
    for (const auto& [k, v] : counters_) summary["dataset/" + k] = v;
    write_json_file(run_dir_ / "summary.json", summary);
  }

  const RunOptions& options_;
  const ResolvedConfig& config_;
  const Registry& registry_;
  HostLogger& logger_;
  World& world_;
  const bool resuming_;
  const uint64_t seed_;
  int threads_ = 1;
  c10::Device device_ = c10::Device(c10::kCPU);
  ScratchDir scratch_;  // a rank other than 0 writes nothing into the run directory
  std::optional<RunDirectory> owned_;
  fs::path run_dir_, write_dir_;
  std::optional<HostRunContext> context_;
  // Declared after what it guards and before the plugins: on a failure the plugins go first, then the
  // guard removes a new run's unused directory, then the directory's lock is released.
  std::optional<NewRunGuard> guard_;
  std::optional<CreatedPlugins> created_;
  std::shared_ptr<CheckpointReader> resume_;
  std::map<std::string, int64_t> counters_;
  std::optional<Trainer> trainer_;
  std::shared_ptr<Model> model_;
};

}  // namespace

int run_command(const RunOptions& options) {
  HostLogger logger;
  logger.set_verbose(options.verbose);
  Registry registry;
  const std::optional<fs::path> config_file = config_to_run(options);
  if (!config_file) return 2;
  ResolvedConfig config;
  try {
    config = load_and_validate(*config_file, options.overrides, registry, logger);
  } catch (const ConfigErrors& e) {
    report_config_errors(e);
    return 2;
  }
  World world;
  try {
    world = boot_communicator(config, registry, logger, static_cast<uint64_t>(config.run.integer("seed")));
  } catch (const std::exception& e) {
    logger.error(error_text(e));
    return 1;
  }
  if (!world.primary()) logger.set_secondary_rank(world.rank);
  try {
    RunSession session(options, config, registry, logger, world);
    session.open_run_directory();
    session.create_plugins();
    session.start_writing();
    if (const std::optional<int> stopped = session.drive()) return *stopped;
    session.test_and_summarize();
    return 0;
  } catch (const std::exception& e) {
    logger.error(error_text(e));
    if (world.size > 1) {
      try {
        world.communicator.call<&Communicator::abort>(error_text(e));  // the other ranks fail now, not at their timeout
      } catch (const std::exception&) {
      }
    }
    return 1;
  }
}

}  // namespace loom::host
