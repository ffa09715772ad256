#include "loop/trainer.h"

#include "state/durable_file.h"
#include "state/hash.h"
#include "loop/loader.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/utils.h>

#include <atomic>
#include <mutex>

namespace loom::host {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler sets g_stop_signal");

at::Generator rng_of(c10::Device device) {
  return device.is_cuda() ? at::globalContext().defaultGenerator(device) : at::detail::getDefaultCPUGenerator();
}

}  // namespace

at::Tensor rng_state(c10::Device device) {
  at::Generator gen = rng_of(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_rng_state(c10::Device device, const at::Tensor& state) {
  at::Generator gen = rng_of(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

void request_stop(int signal) {
  int none = 0;
  if (signal != 0) g_stop_signal.compare_exchange_strong(none, signal);
  g_stop.store(true);
}
int stopped_exit_code() {
  const int signal = g_stop_signal.load();
  return signal != 0 ? 128 + signal : 130;
}
bool stop_requested() { return g_stop.load(); }

Trainer::Trainer(const ResolvedConfig& config, const Registry& registry, HostRunContext& context, RunPlugins& plugins,
                 std::shared_ptr<CheckpointReader> resume, std::filesystem::path run_dir)
    : config_(config),
      registry_(registry),
      context_(context),
      plugins_(plugins),
      resume_(std::move(resume)),
      run_dir_(std::move(run_dir)),
      options_(LoopOptions::from(config, context.device())),
      dp_(plugins.communicator, context.device()),
      labels_(plugins.dataset->labels().to(at::kLong).contiguous()),
      evaluator_{*plugins.dataset, labels_, plugins.precision, dp_, models_, context.device(), options_.eval_batch_size,
                 options_.prefetch},
      progress_(context.host_logger(), stderr_is_terminal(), options_.log_every_seconds),
      control_(dp_.primary(), [this](const Model& m) { return clone_model(m); }, context.run_dir(), summary_,
               context.logger()) {
  if (labels_.dim() != 1 || labels_.size(0) != plugins_.dataset->size())
    throw PluginError(plugins_.dataset->who().describe() + ": labels() must have one entry per sample (" +
                      std::to_string(plugins_.dataset->size()) + "), got shape " + c10::str(labels_.sizes()));
  register_run_state();
  if (resume_) {
    source_ = std::make_unique<StateSource>(*resume_);
    state_.load(*source_, StatePhase::Run);  // callbacks, sinks (they drop what they wrote after it), totals
  }
}

void Trainer::register_run_state() {
  StateProvider run;
  run.key = "run";
  run.phase = StatePhase::Run;
  run.save = [this](EntryWriter& w) {
    Fields totals;
    totals.ints = {{"epochs", epochs_run_}, {"optimizer_steps", steps_run_}};
    totals.reals = {{"train_samples", train_samples_}, {"train_seconds", train_seconds_}, {"wall_seconds", wall_seconds()}};
    for (const auto& [k, v] : summary_) {
      if (const auto* i = std::get_if<int64_t>(&v)) totals.ints["summary/" + k] = *i;
      if (const auto* d = std::get_if<double>(&v)) totals.reals["summary/" + k] = *d;
      if (const auto* str = std::get_if<std::string>(&v)) totals.strings["summary/" + k] = *str;
    }
    w.write({}, totals);
  };
  run.load = [this](const EntryReader& r) {
    const Fields run = r.fields();
    epochs_run_ = run.integer("epochs");
    steps_run_ = run.integer("optimizer_steps");
    train_samples_ = run.real("train_samples");
    train_seconds_ = run.real("train_seconds");
    wall_before_ = run.real("wall_seconds");
    // What the driver and callbacks put into summary.json before the checkpoint.
    const std::string prefix = "summary/";
    for (const auto& [k, v] : run.ints)
      if (k.rfind(prefix, 0) == 0) summary_[k.substr(prefix.size())] = v;
    for (const auto& [k, v] : run.reals)
      if (k.rfind(prefix, 0) == 0) summary_[k.substr(prefix.size())] = v;
    for (const auto& [k, v] : run.strings)
      if (k.rfind(prefix, 0) == 0) summary_[k.substr(prefix.size())] = v;
  };
  run_state_.push_back(state_.add(std::move(run)));
  for (auto& r : plugins_.callbacks.register_state(state_)) run_state_.push_back(std::move(r));
  for (auto& r : plugins_.metrics.register_state(state_)) run_state_.push_back(std::move(r));
}

double Trainer::wall_seconds() const {
  return wall_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - process_start_).count();
}

View Trainer::split(Split split) const {
  View v;
  v.indices = plugins_.dataset->indices(split).to(at::kLong).contiguous();
  v.augment = split == Split::Labeled;
  return v;
}

void Trainer::train(Model& model, const TrainRequest& request) {
  check_view(request.data, plugins_.dataset->size(), "train");
  const View& view = request.data;
  const int64_t epochs = request.epochs > 0 ? request.epochs : options_.epochs;
  if (view.indices.size(0) == 0) throw std::invalid_argument("train: stage '" + request.stage + "' has no samples to train on");
  const AugmentPipeline* augmentation = plugins_.augmentations.find(request.augmentation);  // an unknown name fails here
  if (augmentation && view.augment)
    context_.logger().info("stage '" + request.stage + "' augments its batches with pipeline '" + request.augmentation +
                           "': " + augmentation->describe());
  if (!stages_seen_.insert(request.stage).second)
    throw std::invalid_argument("train: stage name '" + request.stage +
                                "' was used twice in this run; every stage needs its own name (e.g. \"round2/student\")");
  if (config_.student_model && &architecture_of(model) == &*config_.student_model) student_stages_.insert(request.stage);
  stage_ = request.stage;
  round_ = request.round;
  const std::filesystem::path finished = stage_file(request.stage);
  // Only a resumed run finds one: the stage ended before the stop. Unless the checkpoint resumed from is
  // this stage still running: then the process died between writing the stage file and committing the
  // checkpoint that marks the stage done, and the stage's last epoch is replayed (its metrics with it).
  const bool checkpoint_in_this_stage = resume_ && [&] {
    const TrainPosition at = TrainPosition::from(resume_->fields("position"));
    return at.stage == request.stage && !at.stage_done;
  }();
  if (!checkpoint_in_this_stage && std::filesystem::exists(finished)) {
    read_model(finished, model);
    finished_stages_.insert(request.stage);
    if (std::filesystem::exists(stage_file(request.stage, StageWeights::Averaged))) averaged_stages_.insert(request.stage);
    context_.logger().info("stage '" + request.stage + "' had finished before the run was stopped; loaded its weights from " +
                           finished.string());
    return;
  }

  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : model.named_parameters()) named.emplace_back(item.key(), item.value());
  BuiltOptimizer built = make_optimizer(config_.optimizer, named, context_.device());
  const bool channels_last = models_.of(model).input_format == at::MemoryFormat::ChannelsLast;
  context_.logger().info("stage '" + request.stage + "': optimizer " + built.description +
                         (channels_last ? "; model and input batches channels_last" : ""));
  auto optimizer = std::move(built.optimizer);
  TrainPosition pos;
  pos.stage = request.stage;
  pos.round = request.round;
  const bool resuming = resume_ && TrainPosition::from(resume_->fields("position")).stage == request.stage;
  std::vector<StateRegistry::Registration> stage_state;  // this stage's providers, until it returns
  StateProvider accumulation;
  accumulation.key = "accumulation";
  accumulation.phase = StatePhase::Plan;
  accumulation.save = [this](EntryWriter& w) { w.write(plugins_.accumulation.call<&Accumulation::state_dict>()); };
  accumulation.load = [this](const EntryReader& r) { plugins_.accumulation.call<&Accumulation::load_state_dict>(r.tensors()); };
  stage_state.push_back(state_.add(std::move(accumulation)));
  // A resumed stage gives the accumulation plugin its state first: a micro-batch it probed must not be
  // probed again (and possibly differently).
  if (resuming) state_.load(*source_, StatePhase::Plan);
  StagePlanner planner{plugins_.accumulation, *plugins_.dataset, labels_, plugins_.precision, dp_, models_,
                       context_.device(), context_.logger()};
  StagePlan plan = planner.plan(model, view, options_.batch_size, epochs, warned_batchnorm_);
  LrSchedule schedule(config_.lr_schedule, config_.optimizer.real("lr"), plan.total_steps);
  StageInfo info{request.stage, request.round, epochs, plan.total_steps};
  StageRun run{model, *optimizer, view, info, std::move(plan), schedule, pos, request.dropout};
  run.pipeline = view.augment ? augmentation : nullptr;
  register_stage_state(run, stage_state);
  Loop loop{options_, context_, *plugins_.dataset, labels_, plugins_.precision, dp_, plugins_.callbacks, control_,
            plugins_.metrics, progress_, models_, evaluator_};
  control_.reset();
  if (resuming) {
    restore_stage(run);
    plugins_.callbacks.resume(run.info, model, control_);
  } else {
    if (resume_)
      context_.logger().info("stage '" + request.stage + "' is not the checkpointed stage '" +
                             TrainPosition::from(resume_->fields("position")).stage + "'; running it from its start");
    plugins_.callbacks.stage_start(run.info, model, control_);
  }
  run_stage(loop, run);
}

void Trainer::restore_stage(StageRun& run) {
  state_.load(*source_, StatePhase::Stage);
  const TrainPosition& pos = run.pos;
  context_.logger().info("resuming stage '" + pos.stage + "' at epoch " + std::to_string(pos.epoch + 1) + ", micro-batch " +
                         std::to_string(pos.next_micro) + " (" + std::to_string(pos.optimizer_steps) +
                         " optimizer steps done)");
  source_.reset();
  resume_.reset();  // read once: later stages start fresh
}

void Trainer::run_stage(Loop& loop, StageRun& run) {
  TrainPosition& pos = run.pos;
  const Checkpointer checkpoint = [&](const TrainPosition& at) { save_checkpoint(at); };
  const auto dev_opts = at::TensorOptions().dtype(at::kDouble).device(context_.device());
  while (!pos.stage_done) {
    EpochSums sums{at::full({}, pos.loss_sum, dev_opts), at::full({}, pos.correct, dev_opts)};
    const EpochEnd end = run_epoch(loop, run, sums, checkpoint);
    report_epoch(loop, run, sums, pos.train_seconds);
    train_samples_ += static_cast<double>(pos.samples);
    train_seconds_ += pos.train_seconds;
    steps_run_ += pos.optimizer_steps - pos.steps_at_epoch_start;
    ++epochs_run_;
    const auto [signal, stage_stop] = dp_.agree_to_stop(stop_requested(), control_.stop_requested());
    if (stage_stop) control_.adopt_stop();
    pos.next_group = pos.next_micro = pos.samples = 0;
    pos.loss_sum = pos.correct = pos.train_seconds = 0.0;
    if (stage_stop || end == EpochEnd::StageStopped || pos.epoch + 1 == run.info.epochs) break;
    ++pos.epoch;
    pos.steps_at_epoch_start = pos.optimizer_steps;
    save_checkpoint(pos);
    if (signal)
      throw Interrupted("stopped in stage '" + pos.stage + "' after epoch " + std::to_string(pos.epoch) + "; checkpoint written");
  }
  if (control_.stop_requested()) {
    pos.stopped = control_.stop_reason();
    context_.logger().info("stage '" + pos.stage + "' stopped after epoch " + std::to_string(pos.epoch + 1) + " of " +
                           std::to_string(run.info.epochs) + ": " + pos.stopped);
    summary_[pos.stage + "/stopped"] = pos.stopped;
    summary_[pos.stage + "/stopped_epoch"] = pos.epoch + 1;
  }
  // The stage's result is what the model holds after on_stage_end (EMA copies its weights in there); the
  // stage file is written before the checkpoint that marks the stage done, so a resume finds one or the other.
  // Where a callback evaluates an averaged model in place of the live one (ema), both are kept too, for
  // stage_weights(): the live weights before on_stage_end, the averaged ones after it.
  const bool substituted = plugins_.callbacks.eval_model(run.model) != nullptr;
  if (substituted && dp_.primary()) {
    make_directories(stage_file(pos.stage).parent_path());
    write_model(stage_file(pos.stage, StageWeights::Live), run.model);
  }
  plugins_.callbacks.stage_end(run.info, run.model, control_);
  pos.stage_done = true;
  finished_stages_.insert(pos.stage);
  if (substituted) averaged_stages_.insert(pos.stage);
  if (dp_.primary()) {
    make_directories(stage_file(pos.stage).parent_path());
    if (Model* averaged = substituted ? plugins_.callbacks.eval_model(run.model) : nullptr)
      write_model(stage_file(pos.stage, StageWeights::Averaged), *averaged);
    write_model(stage_file(pos.stage), run.model);
  }
  save_checkpoint(pos);
}

void Trainer::save_checkpoint(const TrainPosition& pos) {
  saving_ = pos;
  state_.gather();  // every rank: pending gradients averaged, every rank's epoch sums collected
  if (!dp_.primary()) return;
  CheckpointWriter w;
  state_.save(w);
  w.commit(checkpoint_file());
}

SavedModel Trainer::save_model(Model& model, const std::string& name) {
  if (name.empty() || name.find("..") != std::string::npos || name.front() == '/')
    throw std::invalid_argument("save_model: '" + name + "' is not a relative name inside models/");
  const std::filesystem::path file = context_.run_dir() / "models" / (name + ".pt");
  make_directories(file.parent_path());
  write_model(file, model);
  return {file, sha256_file(file)};
}

void Trainer::log_metrics(const std::map<std::string, MetricValue>& values) {
  MetricRecord record;
  record.kind = RecordKind::Event;
  record.stage = stage_;
  record.round = round_;
  record.values = values;
  plugins_.metrics.write(std::move(record));
}

}  // namespace loom::host
