#include "loop/loop.h"

#include "loop/loader.h"
#include "loop/loss.h"
#include "loop/memory.h"
#include "loop/stop.h"

#include <ATen/ATen.h>

#include <chrono>
#include <functional>

namespace loom::host {

namespace {

using Clock = std::chrono::steady_clock;

double total_grad_norm(torch::nn::Module& model) {
  std::vector<at::Tensor> norms;
  for (const auto& p : model.parameters())
    if (p.grad().defined()) norms.push_back(p.grad().detach().to(at::kFloat).norm());
  return norms.empty() ? 0.0 : at::stack(norms).norm().item<double>();
}

/// After a group's optimizer step was applied: callbacks and sinks hear of it.
void after_step(Loop& loop, StageRun& run, const StepResult& result, const at::Tensor& group_loss, double lr) {
  const int64_t step = run.pos.optimizer_steps;
  const bool record = loop.metrics.step_due(step);
  if (loop.callbacks.empty() && !record) return;
  StepInfo info;
  info.step = step;
  info.epoch = run.pos.epoch + 1;
  info.lr = lr;
  info.loss = group_loss;
  info.grad_norm = result.grad_norm;
  loop.callbacks.optimizer_step(info, run.model, loop.control);
  if (!record) return;
  MetricRecord r;
  r.kind = RecordKind::Step;
  r.stage = run.info.stage;
  r.round = run.info.round;
  r.epoch = info.epoch;
  r.step = step;
  r.values["train_loss"] = group_loss.item<double>();
  r.values["lr"] = lr;
  r.values["grad_norm"] = result.grad_norm >= 0 ? result.grad_norm : total_grad_norm(run.model);
  loop.metrics.write_step(std::move(r));
}

/// The epoch's order (this rank's shard of it) and the loader's options.
struct EpochInput {
  at::Tensor order;
  LoaderOptions options;
};

EpochInput epoch_input(Loop& loop, StageRun& run, const std::string& epoch_tag) {
  const int64_t n = run.view.indices.size(0);
  EpochInput in;
  in.order = loop.options.shuffle
                 ? at::randperm(n, loop.context.generator("order/" + epoch_tag), at::TensorOptions().dtype(at::kLong))
                 : at::arange(n, at::kLong);
  LoaderOptions& options = in.options;
  options.batch_size = run.plan.micro_batch;
  options.prefetch = loop.options.prefetch;
  options.pipeline = run.pipeline;
  options.device = loop.context.device();
  options.memory_format = loop.models.of(run.model).input_format;
  // One stream per micro-batch (and per rank: each rank's block of the batch holds other samples).
  const std::string rank_tag = loop.dp.active() ? "/rank" + std::to_string(loop.dp.rank()) : "";
  options.augment_generator = [&loop, epoch_tag, rank_tag](int64_t i) {
    return loop.context.generator("augment/" + epoch_tag + "/" + std::to_string(i) + rank_tag);
  };
  if (loop.dp.active()) {
    Shard shard = shard_epoch(in.order, run.plan.sizes, loop.dp.rank(), loop.dp.world());
    in.order = shard.order;
    options.batch_sizes = std::move(shard.sizes);
  }
  return in;
}

/// The model in training mode, except what the stage keeps in eval mode (frozen BatchNorm, Dropout off).
void set_train_mode(StageRun& run) {
  run.model.train();
  if (run.plan.freeze_batchnorm)
    for (const auto& bn : run.plan.batchnorms) bn->eval();  // normalise with running statistics, never update them
  if (!run.dropout)
    for (const auto& m : run.model.modules(/*include_self=*/false))
      if (m->name().find("Dropout") != std::string::npos) m->eval();  // Dropout, Dropout2d, AlphaDropout, …
}

/// Forward and backward of one micro-batch (`weight`: its share of its group), into the epoch's sums.
void train_micro_batch(Loop& loop, StageRun& run, EpochSums& sums, const Batch& b, double weight) {
  at::Tensor per_sample, logits;
  {
    auto scope = loop.precision.call<&Precision::forward_scope>(loop.context.device());
    logits = guarded(loop.models.of(run.model).who, "forward", [&] { return run.model.forward(b.x); });
    per_sample = per_sample_loss(logits, b.y, loop.options.label_smoothing);
  }
  if (b.w.defined()) per_sample = per_sample * b.w;
  // mean over this micro-batch × (its samples / the group's samples): the group's gradient is the
  // gradient of the mean loss over all its samples, whatever the micro-batch sizes.
  if (!loop.dp.active()) {
    loop.precision.call<&Precision::backward>(per_sample.mean() * weight);
  } else {
    // sum / global micro-batch size × world: the all-reduce average over ranks restores the global mean.
    const double global = static_cast<double>(run.plan.sizes[static_cast<size_t>(run.pos.next_micro)]);
    loop.precision.call<&Precision::backward>(per_sample.sum() * (weight * static_cast<double>(loop.dp.world()) / global));
  }
  sums.loss_sum += per_sample.detach().sum().to(at::kDouble);
  sums.correct += correct_count(logits.detach(), b.y).to(at::kDouble);
}

/// The micro-batches of `group` from pos.next_micro on. `interrupt` (which throws) ends the epoch at a
/// stop request inside the group.
void run_group(Loop& loop, StageRun& run, EpochSums& sums, Loader& loader, const StepGroup& group,
               const std::function<void()>& interrupt) {
  TrainPosition& pos = run.pos;
  for (int64_t k = pos.next_micro - group.first; k < group.count; ++k) {
    std::optional<Batch> b = loader.next();
    if (!b) throw std::logic_error("loader ended before the plan did");
    if (b->size == 0) {  // this rank's block of a short tail is empty; it still joins the step below
      ++pos.next_micro;
      continue;
    }
    train_micro_batch(loop, run, sums, *b, group.loss_weights[static_cast<size_t>(k)]);
    pos.samples += b->size;
    ++pos.next_micro;
    // Inside a group (single process only: ranks agree on stopping at group boundaries) the pending
    // gradients are saved too.
    if (!loop.dp.active() && k + 1 < group.count && stop_requested()) interrupt();
  }
}

/// The optimizer step that ends a group; the group began at `group_start_loss` and `group_start_samples`.
void step_group(Loop& loop, StageRun& run, const EpochSums& sums, const at::Tensor& group_start_loss,
                int64_t group_start_samples) {
  TrainPosition& pos = run.pos;
  loop.dp.all_reduce_grads(run.model);  // once per optimizer step (never per micro-batch)
  // The schedule's rate, unless a callback set or scaled it (Control::set_lr / scale_lr).
  const double lr = loop.control.lr_for(run.schedule.lr(pos.optimizer_steps));
  for (auto& param_group : run.optimizer.param_groups()) param_group.options().set_lr(lr);
  const StepResult result = loop.precision.call<&Precision::step>(run.optimizer);
  if (!result.skipped) {  // a skipped step never advances the schedule, and no callback hears of it
    ++pos.optimizer_steps;
    const int64_t group_samples = std::max<int64_t>(pos.samples - group_start_samples, 1);
    after_step(loop, run, result, (sums.loss_sum - group_start_loss) / static_cast<double>(group_samples), lr);
  }
  run.optimizer.zero_grad();
  if (loop.options.verify_replicas) loop.dp.verify_replicas(run.model, pos.optimizer_steps);
}

}  // namespace

EpochEnd run_epoch(Loop& loop, StageRun& run, EpochSums& sums, const Checkpointer& checkpoint) {
  TrainPosition& pos = run.pos;
  const EpochPlan& plan = run.plan.epochs[static_cast<size_t>(pos.epoch)];
  const std::vector<int64_t>& sizes = run.plan.sizes;
  const std::string epoch_tag = pos.stage + "/epoch" + std::to_string(pos.epoch);
  EpochInput in = epoch_input(loop, run, epoch_tag);
  Loader loader(loop.dataset, loop.labels, run.view, std::move(in.order), pos.next_micro, std::move(in.options));

  set_train_mode(run);
  if (CpuMemoryTracker::installed()) CpuMemoryTracker::reset_peak();
  const int64_t samples_before = pos.samples;
  const auto start = Clock::now();
  // Sums where the current accumulation group began (from the checkpoint when resuming inside a group).
  at::Tensor group_start_loss = at::full({}, pos.group_start_loss, sums.loss_sum.options());
  int64_t group_start_samples = pos.group_start_samples;
  // A stop writes the checkpoint with the running sums, then leaves through Interrupted.
  auto interrupt = [&] {
    loop.progress.finish();
    TrainPosition saved = pos;
    saved.loss_sum = sums.loss_sum.item<double>();
    saved.correct = sums.correct.item<double>();
    saved.train_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    saved.group_start_loss = group_start_loss.item<double>();
    saved.group_start_samples = group_start_samples;
    checkpoint(saved);
    throw Interrupted("stopped in stage '" + pos.stage + "' at epoch " + std::to_string(pos.epoch + 1) + ", micro-batch " +
                      std::to_string(pos.next_micro) + "; checkpoint written");
  };
  char label[96];
  std::snprintf(label, sizeof label, "[%s] epoch %lld/%lld", pos.stage.c_str(), static_cast<long long>(pos.epoch + 1),
                static_cast<long long>(run.info.epochs));
  loop.progress.start(label, static_cast<int64_t>(sizes.size()), pos.next_micro);

  for (size_t g = static_cast<size_t>(pos.next_group); g < plan.groups.size(); ++g) {
    const StepGroup& group = plan.groups[g];
    for (; pos.next_micro < group.first; ++pos.next_micro) loader.next();  // not in any group: skipped
    if (pos.next_micro == group.first) {  // a fresh group (not one resumed part-way)
      group_start_loss = sums.loss_sum.clone();
      group_start_samples = pos.samples;
    }
    run_group(loop, run, sums, loader, group, interrupt);
    if (group.step) step_group(loop, run, sums, group_start_loss, group_start_samples);
    pos.next_group = static_cast<int64_t>(g) + 1;
    loop.progress.update(pos.next_micro, pos.samples - samples_before, [&] {
      return sums.loss_sum.item<double>() / static_cast<double>(std::max<int64_t>(pos.samples, 1));
    });
    const auto [signal, stage_stop] = loop.dp.agree_to_stop(stop_requested(), loop.control.stop_requested());
    if (stage_stop) {
      loop.control.adopt_stop();
      loop.progress.finish();
      pos.train_seconds += std::chrono::duration<double>(Clock::now() - start).count();
      return EpochEnd::StageStopped;
    }
    if (signal && pos.next_group < static_cast<int64_t>(plan.groups.size())) interrupt();
  }
  loop.progress.finish();
  pos.train_seconds += std::chrono::duration<double>(Clock::now() - start).count();
  return EpochEnd::Completed;
}

}  // namespace loom::host
