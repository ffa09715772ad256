#include "trainer.h"

#include "hash.h"

#include "loader.h"
#include "loss.h"
#include "memory.h"
#include "optim.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/loss.h>
#include <torch/utils.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>

namespace loom::host {

namespace {

std::atomic<bool> g_stop{false};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

at::Tensor correct_count(const at::Tensor& logits, const at::Tensor& targets) {
  const at::Tensor predicted = logits.argmax(1);
  const at::Tensor truth = targets.dim() == 2 ? targets.argmax(1) : targets;
  return predicted.eq(truth).sum();
}

at::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const at::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

/// Restores train/eval mode when leaving a scope (predict/evaluate switch to eval).
struct ModeGuard {
  torch::nn::Module& module;
  bool was_training;
  explicit ModeGuard(torch::nn::Module& m) : module(m), was_training(m.is_training()) {}
  ~ModeGuard() { module.train(was_training); }
};

void check_view(const View& view, int64_t dataset_size, const char* what) {
  if (!view.indices.defined() || view.indices.dim() != 1 || view.indices.scalar_type() != at::kLong)
    throw std::invalid_argument(std::string(what) + ": view.indices must be a 1-D int64 tensor");
  const int64_t n = view.indices.size(0);
  if (n > 0 && (view.indices.min().item<int64_t>() < 0 || view.indices.max().item<int64_t>() >= dataset_size))
    throw std::invalid_argument(std::string(what) + ": view.indices out of the dataset's range [0, " +
                                std::to_string(dataset_size) + ")");
  if (view.targets.defined() && view.targets.size(0) != n)
    throw std::invalid_argument(std::string(what) + ": view.targets has " + std::to_string(view.targets.size(0)) +
                                " rows for " + std::to_string(n) + " indices");
  if (view.weights.defined() && view.weights.numel() != n)
    throw std::invalid_argument(std::string(what) + ": view.weights has " + std::to_string(view.weights.numel()) +
                                " entries for " + std::to_string(n) + " indices");
}

/// Gradients not yet applied, in parameters() order (for a checkpoint inside a group or before a carry).
std::vector<at::Tensor> pending_grads(torch::nn::Module& model) {
  std::vector<at::Tensor> grads;
  bool any = false;
  for (const auto& p : model.parameters()) {
    grads.push_back(p.grad().defined() ? p.grad().detach().clone() : at::Tensor());
    any = any || p.grad().defined();
  }
  if (!any) grads.clear();
  return grads;
}

void restore_grads(torch::nn::Module& model, const std::vector<at::Tensor>& grads) {
  auto params = model.parameters();
  if (grads.empty()) return;
  if (grads.size() != params.size())
    throw std::runtime_error("checkpoint holds " + std::to_string(grads.size()) + " pending gradients for a model with " +
                             std::to_string(params.size()) + " parameters");
  for (size_t i = 0; i < grads.size(); ++i)
    if (grads[i].defined()) params[i].mutable_grad() = grads[i].to(params[i].device());
}

std::vector<std::shared_ptr<torch::nn::Module>> batchnorm_modules(torch::nn::Module& model) {
  std::vector<std::shared_ptr<torch::nn::Module>> out;
  for (const auto& m : model.modules(/*include_self=*/false))
    if (m->name().find("BatchNorm") != std::string::npos) out.push_back(m);
  return out;
}

/// [loader] prefetch = -1 (auto): a background loader on CUDA, where batches are copied while the GPU
/// computes; none on the CPU, where a loader thread competes with the intra-op threads for the same cores
/// — measured on the 2-core VM: the MLP epoch 3.0 s with a loader thread, 1.0 s without (docs/benchmarks.md).
int64_t prefetch_depth(int64_t configured, c10::Device device) {
  if (configured >= 0) return configured;
  return device.is_cuda() ? 2 : 0;
}

}  // namespace

nlohmann::json to_json(const MetricValue& v) {
  return std::visit(
      [](const auto& x) {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::monostate>)
          return nlohmann::json(nullptr);
        else
          return nlohmann::json(x);
      },
      v);
}

void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }

Trainer::Trainer(const ResolvedConfig& config, const Registry& registry, HostRunContext& context, RunPlugins plugins,
                 MetricsWriter& metrics, std::optional<CheckpointState> resume, std::filesystem::path run_dir)
    : config_(config),
      registry_(registry),
      context_(context),
      plugins_(std::move(plugins)),
      metrics_(metrics),
      resume_(std::move(resume)),
      run_dir_(std::move(run_dir)),
      progress_(context.host_logger(), stderr_is_terminal(), static_cast<double>(config.run.integer("log_every_seconds"))) {
  if (plugins_.communicator) {
    rank_ = plugins_.communicator->rank();
    world_ = plugins_.communicator->world_size();
  }
  labels_ = plugins_.dataset->labels().to(at::kLong).contiguous();
  if (labels_.dim() != 1 || labels_.size(0) != plugins_.dataset->size())
    throw std::runtime_error("dataset plugin '" + config.one(Kind::Dataset).feature->info.name +
                             "': labels() must have one entry per sample (" + std::to_string(plugins_.dataset->size()) +
                             "), got shape " + c10::str(labels_.sizes()));
}

View Trainer::split(Split split) const {
  View v;
  v.indices = plugins_.dataset->indices(split).to(at::kLong).contiguous();
  v.augment = split == Split::Labeled;
  return v;
}

std::shared_ptr<Model> Trainer::create_model() {
  const PluginChoice& choice = config_.one(Kind::Model);
  CreateContext ctx{choice.params, context_, plugins_.dataset};
  // Seeded per call, so the k-th model of a resumed run is the k-th model of the original run.
  torch::manual_seed(derive_seed(context_.seed(), "model/" + std::to_string(models_created_++)));
  std::shared_ptr<Model> model = registry_.create<Model>(*choice.feature, ctx);
  model->to(context_.device());
  if (distributed()) {  // identical replicas: rank 0's initial weights everywhere
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> state;
    for (const auto& p : model->parameters()) state.push_back(p.detach());
    for (const auto& b : model->buffers()) state.push_back(b.detach());
    plugins_.communicator->broadcast(state, 0);
  }
  plugins_.precision->prepare(*model, context_.device());
  return model;
}

std::vector<EpochPlan> Trainer::plan_epochs(int64_t epochs, const std::vector<int64_t>& sizes, int64_t* total) const {
  const std::string who = "accumulation plugin '" + config_.one(Kind::Accumulation).feature->info.name + "'";
  std::vector<EpochPlan> plans;
  int64_t steps = 0;
  for (int64_t e = 0; e < epochs; ++e) {
    EpochPlan plan;
    try {
      plan = plugins_.accumulation->plan(PlanRequest{e, epochs, sizes, steps});
    } catch (const std::exception& ex) {
      throw PluginError(who + " failed in plan: " + ex.what());
    }
    int64_t next = 0;
    for (const StepGroup& g : plan.groups) {
      if (g.first < next || g.count <= 0 || g.first + g.count > static_cast<int64_t>(sizes.size()) ||
          static_cast<int64_t>(g.loss_weights.size()) != g.count)
        throw PluginError(who + " returned an invalid plan for epoch " + std::to_string(e) + ": group at micro-batch " +
                          std::to_string(g.first) + " (count " + std::to_string(g.count) + ", " +
                          std::to_string(g.loss_weights.size()) + " weights) overlaps, is empty or leaves the " +
                          std::to_string(sizes.size()) + " micro-batches");
      next = g.first + g.count;
      if (g.step) ++steps;
    }
    plans.push_back(std::move(plan));
  }
  *total = steps;
  return plans;
}

void Trainer::train(Model& model, const TrainRequest& request) {
  const Dataset& data = *plugins_.dataset;
  check_view(request.data, data.size(), "train");
  const View& view = request.data;
  const int64_t epochs = request.epochs > 0 ? request.epochs : config_.run.integer("epochs");
  const int64_t n = view.indices.size(0);
  if (n == 0) throw std::invalid_argument("train: stage '" + request.stage + "' has no samples to train on");
  if (!stages_seen_.insert(request.stage).second)
    throw std::invalid_argument("train: stage name '" + request.stage +
                                "' was used twice in this run; every stage needs its own name (e.g. \"round2/student\")");
  stage_ = request.stage;
  round_ = request.round;
  const c10::Device device = context_.device();
  const std::filesystem::path finished = stage_file(request.stage);
  if (std::filesystem::exists(finished)) {  // only a resumed run finds one: the stage ended before the stop
    read_model(finished, model);
    context_.logger().info("stage '" + request.stage + "' had finished before the run was stopped; loaded its weights from " +
                           finished.string());
    return;
  }

  auto optimizer = make_optimizer(config_.optimizer, model.parameters());
  const std::string accumulation_name = config_.one(Kind::Accumulation).feature->info.name;
  // A resumed stage gives the accumulation plugin its state first: a micro-batch it probed must not be
  // probed again (and possibly differently).
  if (resume_ && resume_->position.stage == request.stage)
    plugins_.accumulation->load_state_dict(resume_->accumulation);
  int64_t batch = 0;
  try {
    batch = plugins_.accumulation->micro_batch_size(config_.loader.integer("batch_size"),
                                                    [&](int64_t size) { return probe_micro_batch(model, view, size); });
  } catch (const std::exception& e) {
    throw PluginError("accumulation plugin '" + accumulation_name + "' failed choosing the micro-batch size: " + e.what());
  }
  if (batch <= 0)
    throw PluginError("accumulation plugin '" + accumulation_name + "' chose a micro-batch size of " + std::to_string(batch));
  if (distributed()) {  // a probed size may differ between ranks: rank 0's is everyone's
    at::Tensor agreed = at::full({1}, batch, at::TensorOptions().dtype(at::kLong).device(device));
    plugins_.communicator->broadcast({agreed}, 0);
    batch = agreed.item<int64_t>();
  }
  // The plan is over global micro-batches (world × batch samples each; each rank holds its block of them),
  // so accumulation, the LR schedule and the loss weights mean the same at any world size.
  const std::vector<int64_t> sizes = micro_batch_sizes(n, batch * world_);
  int64_t total_steps = 0;
  const std::vector<EpochPlan> plans = plan_epochs(epochs, sizes, &total_steps);
  const LrSchedule schedule(config_.lr_schedule, config_.optimizer.real("lr"), total_steps);
  const auto batchnorms = batchnorm_modules(model);
  apply_batchnorm_policy(batchnorms, plans, batch);

  TrainPosition pos;
  pos.stage = request.stage;
  pos.round = request.round;
  if (resume_) {
    if (resume_->position.stage == request.stage) {
      restore_checkpoint(checkpoint_file(), model, *optimizer);
      restore_grads(model, resume_->pending_grads);
      pos = resume_->position;
      plugins_.precision->load_state_dict(resume_->precision);
      set_cpu_rng_state(resume_->cpu_rng);
      context_.logger().info("resuming stage '" + pos.stage + "' at epoch " + std::to_string(pos.epoch + 1) +
                             ", micro-batch " + std::to_string(pos.next_micro) + " (" +
                             std::to_string(pos.optimizer_steps) + " optimizer steps done)");
      resume_.reset();
    } else {
      context_.logger().info("stage '" + request.stage + "' precedes the checkpointed stage '" +
                             resume_->position.stage + "'; running it again");
    }
  }
  if (pos.stage_done) return;

  LoaderOptions loader_options;
  loader_options.batch_size = batch;
  loader_options.prefetch = prefetch_depth(config_.loader.integer("prefetch"), device);
  loader_options.augment = view.augment;
  loader_options.device = device;
  const auto dev_opts = at::TensorOptions().dtype(at::kDouble).device(device);

  for (; pos.epoch < epochs; ++pos.epoch) {
    const EpochPlan& plan = plans[static_cast<size_t>(pos.epoch)];
    const std::string epoch_tag = request.stage + "/epoch" + std::to_string(pos.epoch);
    at::Tensor order = config_.loader.boolean("shuffle")
                           ? at::randperm(n, context_.generator("order/" + epoch_tag), at::TensorOptions().dtype(at::kLong))
                           : at::arange(n, at::kLong);
    loader_options.augment_generator = [this, epoch_tag](int64_t i) {
      return context_.generator("augment/" + epoch_tag + "/" + std::to_string(i));
    };
    if (distributed()) {
      Shard shard = shard_epoch(order, sizes, rank_, world_);
      order = shard.order;
      loader_options.batch_sizes = std::move(shard.sizes);
    }
    Loader loader(data, labels_, view, order, pos.next_micro, loader_options);

    model.train();
    if (freeze_batchnorm_)
      for (const auto& bn : batchnorms) bn->eval();  // normalise with running statistics, never update them
    if (!request.dropout)
      for (const auto& m : model.modules(/*include_self=*/false))
        if (m->name().find("Dropout") != std::string::npos) m->eval();  // Dropout, Dropout2d, AlphaDropout, …
    if (CpuMemoryTracker::installed()) CpuMemoryTracker::reset_peak();
    at::Tensor loss_sum = at::full({}, pos.loss_sum, dev_opts);
    at::Tensor correct = at::full({}, pos.correct, dev_opts);
    const int64_t samples_before = pos.samples;
    const int64_t steps_at_epoch_start = pos.optimizer_steps;
    comm_seconds_ = 0.0;
    const auto epoch_start = Clock::now();
    char label[96];
    std::snprintf(label, sizeof label, "[%s] epoch %lld/%lld", request.stage.c_str(),
                  static_cast<long long>(pos.epoch + 1), static_cast<long long>(epochs));
    progress_.start(label, static_cast<int64_t>(sizes.size()), pos.next_micro);

    for (size_t g = static_cast<size_t>(pos.next_group); g < plan.groups.size(); ++g) {
      const StepGroup& group = plan.groups[g];
      for (; pos.next_micro < group.first; ++pos.next_micro) loader.next();  // not in any group: skipped
      for (int64_t k = pos.next_micro - group.first; k < group.count; ++k) {
        std::optional<Batch> b = loader.next();
        if (!b) throw std::logic_error("loader ended before the plan did");
        if (b->size == 0) {  // this rank's block of a short tail is empty; it still joins the step below
          ++pos.next_micro;
          continue;
        }
        at::Tensor per_sample;
        at::Tensor logits;
        {
          auto scope = plugins_.precision->forward_scope(device);
          logits = model.forward(b->x);
          per_sample = per_sample_loss(logits, b->y);
        }
        if (b->w.defined()) per_sample = per_sample * b->w;
        // mean over this micro-batch × (its samples / the group's samples): the group's gradient is the
        // gradient of the mean loss over all its samples, whatever the micro-batch sizes.
        const double weight = group.loss_weights[static_cast<size_t>(k)];
        if (!distributed()) {
          plugins_.precision->backward(per_sample.mean() * weight);
        } else {
          // sum / global micro-batch size × world: the all-reduce average over ranks restores the global mean.
          const double global = static_cast<double>(sizes[static_cast<size_t>(pos.next_micro)]);
          plugins_.precision->backward(per_sample.sum() * (weight * static_cast<double>(world_) / global));
        }
        loss_sum += per_sample.detach().sum().to(at::kDouble);
        correct += correct_count(logits.detach(), b->y).to(at::kDouble);
        pos.samples += b->size;
        ++pos.next_micro;
        // Inside a group (single process only: ranks agree on stopping at group boundaries): the pending
        // gradients are saved too.
        if (!distributed() && k + 1 < group.count && stop_requested()) {
          progress_.finish();
          interrupt(model, *optimizer, pos, loss_sum, correct, epoch_start);
        }
      }
      if (group.step) {
        if (distributed()) all_reduce_grads(model);  // once per optimizer step (never per micro-batch)
        schedule.apply(*optimizer, pos.optimizer_steps);
        const StepResult result = plugins_.precision->step(*optimizer);
        if (!result.skipped) ++pos.optimizer_steps;  // a skipped step never advances the schedule
        optimizer->zero_grad();
        if (distributed() && config_.run.boolean("verify_replicas")) verify_replicas(model, pos.optimizer_steps);
      }
      pos.next_group = static_cast<int64_t>(g) + 1;
      progress_.update(pos.next_micro, pos.samples - samples_before, [&] {
        return loss_sum.item<double>() / static_cast<double>(std::max<int64_t>(pos.samples, 1));
      });
      const bool stop = distributed() ? all_agree_to_stop() : stop_requested();
      if (stop && pos.next_group < static_cast<int64_t>(plan.groups.size())) {
        progress_.finish();
        interrupt(model, *optimizer, pos, loss_sum, correct, epoch_start);
      }
    }
    progress_.finish();
    const double epoch_seconds = pos.train_seconds + seconds_since(epoch_start);
    if (distributed()) {  // every rank reports the whole epoch
      at::Tensor sums = at::stack({loss_sum, correct, at::full({}, static_cast<double>(pos.samples), dev_opts)});
      plugins_.communicator->all_reduce({sums}, ReduceOp::Sum);
      loss_sum = sums[0];
      correct = sums[1];
      pos.samples = static_cast<int64_t>(sums[2].item<double>());
      if (config_.run.boolean("sync_bn")) sync_batchnorm(batchnorms);
    }
    const double total_loss = loss_sum.item<double>();
    const double samples = static_cast<double>(std::max<int64_t>(pos.samples, 1));

    nlohmann::json record;
    record["round"] = request.round;
    record["stage"] = request.stage;
    record["epoch"] = pos.epoch + 1;
    record["optimizer_steps"] = pos.optimizer_steps;
    record["train_loss"] = total_loss / samples;
    record["train_accuracy"] = correct.item<double>() / samples;
    record["lr"] = schedule.lr(pos.optimizer_steps);
    record["samples_per_second"] = static_cast<double>(pos.samples) / std::max(epoch_seconds, 1e-9);
    record["epoch_seconds"] = epoch_seconds;
    record["threads"] = context_.threads();
    record["micro_batch_size"] = batch;
    record["optimizer_steps_in_epoch"] = pos.optimizer_steps - steps_at_epoch_start;
    if (distributed()) {
      record["world_size"] = world_;
      record["grad_allreduce_seconds"] = comm_seconds_;  // this rank's time in the gradient all-reduce
    }
    if (CpuMemoryTracker::installed() && device.is_cpu())
      record["peak_memory_mb"] = static_cast<double>(CpuMemoryTracker::peak_bytes()) / (1024.0 * 1024.0);
    const View val = split(Split::Val);
    if (val.indices.numel() > 0) {
      const EvalResult r = evaluate(model, val);
      record["val_loss"] = r.loss;
      record["val_accuracy"] = r.accuracy;
    } else {
      record["val_loss"] = nullptr;
      record["val_accuracy"] = nullptr;
    }
    for (const auto& [k, v] : plugins_.precision->epoch_metrics()) record[k] = v;
    metrics_.write(record);
    char line[256];
    std::snprintf(line, sizeof line, "%s: train_loss %.4f  val_accuracy %s  lr %.3g  %.0f samples/s  (%.1fs)", label,
                  total_loss / samples,
                  record["val_accuracy"].is_null() ? "n/a" : std::to_string(record["val_accuracy"].get<double>()).c_str(),
                  record["lr"].get<double>(), record["samples_per_second"].get<double>(), epoch_seconds);
    context_.logger().info(line);

    train_samples_ += static_cast<double>(pos.samples);
    train_seconds_ += epoch_seconds;
    ++epochs_run_;
    pos.next_group = pos.next_micro = pos.samples = 0;
    pos.loss_sum = pos.correct = pos.train_seconds = 0.0;
    pos.stage_done = pos.epoch + 1 == epochs;
    TrainPosition saved = pos;
    if (!saved.stage_done) ++saved.epoch;
    save_checkpoint(model, *optimizer, saved);
    if (saved.stage_done && primary()) {
      std::filesystem::create_directories(finished.parent_path());
      write_model(finished, model);
    }
    if (stop_requested() && !saved.stage_done)
      throw Interrupted("stopped in stage '" + pos.stage + "' after epoch " + std::to_string(pos.epoch + 1) +
                        "; checkpoint written");
  }
}

void Trainer::interrupt(Model& model, torch::optim::Optimizer& optimizer, TrainPosition& pos, const at::Tensor& loss_sum,
                        const at::Tensor& correct, std::chrono::steady_clock::time_point epoch_start) {
  pos.loss_sum = loss_sum.item<double>();
  pos.correct = correct.item<double>();
  pos.train_seconds += seconds_since(epoch_start);
  save_checkpoint(model, optimizer, pos);
  throw Interrupted("stopped in stage '" + pos.stage + "' at epoch " + std::to_string(pos.epoch + 1) + ", micro-batch " +
                    std::to_string(pos.next_micro) + "; checkpoint written");
}

void Trainer::save_checkpoint(Model& model, torch::optim::Optimizer& optimizer, const TrainPosition& pos) {
  if (distributed()) {
    // Gradients carried past this point (a group that spans the epoch end) are each rank's own; averaging
    // them now changes nothing (the step's average of averages plus new local sums is the same average)
    // and lets rank 0's checkpoint hold what every rank needs on resume.
    at::Tensor any = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(context_.device()));
    for (const auto& p : model.parameters())
      if (p.grad().defined()) any.fill_(1.0);
    plugins_.communicator->all_reduce({any}, ReduceOp::Max);
    if (any.item<float>() > 0) all_reduce_grads(model);
  }
  if (!primary()) return;
  write_checkpoint(checkpoint_file(), model, optimizer,
                   {pos, plugins_.precision->state_dict(), plugins_.accumulation->state_dict(), cpu_rng_state(),
                    pending_grads(model)});
}

void Trainer::all_reduce_grads(Model& model) {
  std::vector<at::Tensor> grads;
  for (auto& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);  // no samples on this rank in this step
    grads.push_back(p.grad());
  }
  const auto start = Clock::now();
  plugins_.communicator->all_reduce(grads, ReduceOp::Avg);
  comm_seconds_ += seconds_since(start);
}

bool Trainer::all_agree_to_stop() {
  at::Tensor flag = at::full({1}, stop_requested() ? 1.0f : 0.0f, at::TensorOptions().dtype(at::kFloat).device(context_.device()));
  plugins_.communicator->all_reduce({flag}, ReduceOp::Max);
  const bool stop = flag.item<float>() > 0;
  if (stop) request_stop();  // a rank that got no signal stops with the others
  return stop;
}

void Trainer::sync_batchnorm(const std::vector<std::shared_ptr<torch::nn::Module>>& batchnorms) {
  std::vector<at::Tensor> stats;
  for (const auto& bn : batchnorms)
    for (const auto& b : bn->buffers(/*recurse=*/false))
      if (b.is_floating_point()) stats.push_back(b.detach());
  if (!stats.empty()) plugins_.communicator->all_reduce(stats, ReduceOp::Avg);
}

void Trainer::verify_replicas(Model& model, int64_t step) {
  torch::NoGradGuard no_grad;
  at::Tensor sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(context_.device()));
  for (const auto& p : model.parameters()) sum += p.detach().to(at::kDouble).sum();
  at::Tensor both = at::stack({sum, -sum});  // max of both: the largest and (negated) the smallest checksum
  plugins_.communicator->all_reduce({both}, ReduceOp::Max);
  const double high = both[0].item<double>(), low = -both[1].item<double>();
  if (high != low)
    throw std::runtime_error("[run] verify_replicas: the ranks' weights differ after optimizer step " + std::to_string(step) +
                             " (checksums from " + std::to_string(low) + " to " + std::to_string(high) + ")");
}

std::optional<int64_t> Trainer::probe_micro_batch(Model& model, const View& view, int64_t size) {
  const int64_t n = view.indices.size(0);
  if (size <= 0) return std::nullopt;
  size = std::min(size, n);
  const c10::Device device = context_.device();
  const at::Tensor positions = at::arange(size, at::kLong);
  const at::Tensor indices = view.indices.index_select(0, positions);
  at::Tensor x = plugins_.dataset->load(indices).to(device);
  at::Tensor y = (view.targets.defined() ? view.targets.index_select(0, positions) : labels_.index_select(0, indices)).to(device);
  // The probe must leave no trace: BatchNorm statistics, gradients and the dropout RNG are restored.
  std::vector<at::Tensor> buffers;
  for (const auto& b : model.buffers()) buffers.push_back(b.detach().clone());
  const at::Tensor rng = cpu_rng_state();
  const bool was_training = model.is_training();
  model.train();
  std::optional<int64_t> result;
  const int64_t before = CpuMemoryTracker::current_bytes();
  if (CpuMemoryTracker::installed()) CpuMemoryTracker::reset_peak();
  try {
    at::Tensor loss;
    {
      auto scope = plugins_.precision->forward_scope(device);
      loss = per_sample_loss(model.forward(x), y).mean();
    }
    loss.backward();
    result = device.is_cpu() && CpuMemoryTracker::installed() ? CpuMemoryTracker::peak_bytes() - before : 0;
  } catch (const c10::OutOfMemoryError&) {
    result.reset();
  }
  model.zero_grad();
  model.train(was_training);
  torch::NoGradGuard no_grad;
  auto live = model.buffers();
  for (size_t i = 0; i < live.size(); ++i) live[i].copy_(buffers[i]);
  set_cpu_rng_state(rng);
  context_.logger().debug("micro-batch probe: " + std::to_string(size) + " samples → " +
                          (result ? std::to_string(*result / (1024 * 1024)) + " MiB" : std::string("out of memory")));
  return result;
}

void Trainer::apply_batchnorm_policy(const std::vector<std::shared_ptr<torch::nn::Module>>& batchnorms,
                                     const std::vector<EpochPlan>& plans, int64_t micro_batch) {
  freeze_batchnorm_ = false;
  if (batchnorms.empty()) return;
  bool accumulates = false;
  for (const auto& plan : plans)
    for (const auto& g : plan.groups) accumulates = accumulates || g.count > 1 || !g.step;
  if (!accumulates) return;
  const std::string name = config_.one(Kind::Accumulation).feature->info.name;
  const std::string what = "the model has " + std::to_string(batchnorms.size()) +
                           " BatchNorm layer(s) and accumulation plugin '" + name +
                           "' groups micro-batches: BatchNorm still normalises each micro-batch of " +
                           std::to_string(micro_batch) + " samples alone (accumulation does not enlarge its batch statistics)";
  switch (plugins_.accumulation->batchnorm_policy()) {
    case Accumulation::BatchNormPolicy::Warn:
      if (!warned_batchnorm_) context_.logger().warn(what + "; set bn = \"freeze\" to use running statistics instead, or bn = \"error\" to refuse");
      warned_batchnorm_ = true;
      break;
    case Accumulation::BatchNormPolicy::Freeze:
      freeze_batchnorm_ = true;
      context_.logger().info(what + "; bn = \"freeze\": BatchNorm layers run in eval mode (running statistics, not updated)");
      break;
    case Accumulation::BatchNormPolicy::Error:
      throw std::runtime_error(what + ". [accumulation] bn = \"error\" refuses this; use bn = \"freeze\" or \"warn\", or a model without BatchNorm");
  }
}

struct Trainer::EvalSums {
  double loss = 0.0, correct = 0.0;
  int64_t samples = 0;
  at::Tensor probabilities;
};

Trainer::EvalSums Trainer::run_eval(Model& model, const View& view, bool keep_probabilities) {
  check_view(view, plugins_.dataset->size(), keep_probabilities ? "predict" : "evaluate");
  EvalSums sums;
  const int64_t n = view.indices.size(0);
  if (n == 0) return sums;
  ModeGuard mode(model);
  model.eval();
  torch::NoGradGuard no_grad;
  const c10::Device device = context_.device();
  LoaderOptions options;
  options.batch_size = config_.loader.integer("eval_batch_size");
  options.prefetch = prefetch_depth(config_.loader.integer("prefetch"), device);
  options.augment = false;
  options.device = device;
  // Distributed: each rank evaluates its block of the view; sums (and predicted rows) are all-reduced.
  const int64_t lo = n * rank_ / world_, hi = n * (rank_ + 1) / world_;
  Loader loader(*plugins_.dataset, labels_, view, at::arange(lo, hi, at::kLong), 0, options);
  const auto dev_opts = at::TensorOptions().dtype(at::kDouble).device(device);
  at::Tensor loss_sum = at::zeros({}, dev_opts), correct = at::zeros({}, dev_opts);
  std::vector<at::Tensor> probabilities;
  while (auto b = loader.next()) {
    at::Tensor logits;
    {
      auto scope = plugins_.precision->forward_scope(device);
      logits = model.forward(b->x);
    }
    logits = logits.to(at::kFloat);
    at::Tensor per_sample = per_sample_loss(logits, b->y);
    if (b->w.defined()) per_sample = per_sample * b->w;
    loss_sum += per_sample.sum().to(at::kDouble);
    correct += correct_count(logits, b->y).to(at::kDouble);
    if (keep_probabilities) probabilities.push_back(at::softmax(logits, 1).cpu());
  }
  if (distributed()) {
    at::Tensor both = at::stack({loss_sum, correct});
    plugins_.communicator->all_reduce({both}, ReduceOp::Sum);
    loss_sum = both[0];
    correct = both[1];
  }
  sums.loss = loss_sum.item<double>();
  sums.correct = correct.item<double>();
  sums.samples = n;
  if (keep_probabilities) {
    at::Tensor mine = probabilities.empty() ? at::Tensor() : at::cat(probabilities, 0);
    if (distributed()) {  // an all-gather as a sum: every rank fills its rows of a zero tensor
      at::Tensor all = at::zeros({n, plugins_.dataset->spec().num_classes}, at::TensorOptions().dtype(at::kFloat).device(device));
      if (mine.defined()) all.narrow(0, lo, hi - lo).copy_(mine);
      plugins_.communicator->all_reduce({all}, ReduceOp::Sum);
      mine = all.cpu();
    }
    sums.probabilities = mine;
  }
  return sums;
}

at::Tensor Trainer::predict(Model& model, const View& view) {
  EvalSums s = run_eval(model, view, true);
  if (!s.probabilities.defined())
    return at::empty({0, plugins_.dataset->spec().num_classes}, at::kFloat);
  return s.probabilities;
}

EvalResult Trainer::evaluate(Model& model, const View& view) {
  EvalSums s = run_eval(model, view, false);
  EvalResult r;
  r.samples = s.samples;
  r.loss = s.samples ? s.loss / static_cast<double>(s.samples) : std::nan("");
  r.accuracy = s.samples ? s.correct / static_cast<double>(s.samples) : std::nan("");
  return r;
}

std::filesystem::path Trainer::stage_file(const std::string& stage) const {
  return run_dir_ / "stages" / (stage + ".pt");
}

SavedModel Trainer::save_model(Model& model, const std::string& name) {
  if (name.empty() || name.find("..") != std::string::npos || name.front() == '/')
    throw std::invalid_argument("save_model: '" + name + "' is not a relative name inside models/");
  const std::filesystem::path file = context_.run_dir() / "models" / (name + ".pt");
  std::filesystem::create_directories(file.parent_path());
  write_model(file, model);
  return {file, sha256_file(file)};
}

void Trainer::summarize(const std::string& key, const MetricValue& value) { summary_[key] = value; }

void Trainer::log_metrics(const std::map<std::string, MetricValue>& record) {
  nlohmann::json j;
  j["round"] = round_;
  j["stage"] = stage_;
  for (const auto& [k, v] : record) j[k] = to_json(v);
  metrics_.write(j);
}

}  // namespace loom::host
