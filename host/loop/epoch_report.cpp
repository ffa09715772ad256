#include "loop/loop.h"

#include "loop/memory.h"

#include <ATen/ATen.h>

#include <cmath>

namespace loom::host {

namespace {

std::string format_number(const MetricValue& v) {
  if (auto d = as_number(v)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", *d);
    return buf;
  }
  return "n/a";
}

/// Every rank's sums of the epoch added up, so that every rank reports the whole epoch (and BatchNorm
/// statistics averaged where [run] sync_bn asks).
void sum_over_ranks(Loop& loop, StageRun& run, EpochSums& sums) {
  TrainPosition& pos = run.pos;
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(loop.context.device());
  at::Tensor all = at::stack({sums.loss_sum, sums.correct, at::full({}, static_cast<double>(pos.samples), opts)});
  loop.dp.sum(all);
  sums.loss_sum = all[0];
  sums.correct = all[1];
  pos.samples = static_cast<int64_t>(all[2].item<double>());
  if (loop.options.sync_bn) loop.dp.sync_batchnorm(run.plan.batchnorms);
}

/// The epoch's report with its training figures (no validation yet).
EpochReport train_report(Loop& loop, StageRun& run, const EpochSums& sums, double seconds) {
  const TrainPosition& pos = run.pos;
  const double samples = static_cast<double>(std::max<int64_t>(pos.samples, 1));
  EpochReport report;
  report.stage = pos.stage;
  report.round = pos.round;
  report.epoch = pos.epoch + 1;
  report.step = pos.optimizer_steps;
  auto& m = report.metrics;
  m["optimizer_steps"] = pos.optimizer_steps;
  m["optimizer_steps_in_epoch"] = pos.optimizer_steps - pos.steps_at_epoch_start;
  m["train_loss"] = sums.loss_sum.item<double>() / samples;
  m["train_accuracy"] = sums.correct.item<double>() / samples;
  m["lr"] = loop.control.lr_for(run.schedule.lr(pos.optimizer_steps));
  m["samples_per_second"] = static_cast<double>(pos.samples) / std::max(seconds, 1e-9);
  m["epoch_seconds"] = seconds;
  m["threads"] = static_cast<int64_t>(loop.context.threads());
  m["micro_batch_size"] = run.plan.micro_batch;
  if (loop.dp.active()) {
    m["world_size"] = static_cast<int64_t>(loop.dp.world());
    m["grad_allreduce_seconds"] = loop.dp.take_allreduce_seconds();  // this rank's time in the gradient all-reduce
  }
  if (CpuMemoryTracker::installed() && loop.context.device().is_cpu())
    m["peak_memory_mb"] = static_cast<double>(CpuMemoryTracker::peak_bytes()) / (1024.0 * 1024.0);
  return report;
}

/// A diverged run must not go on (or end with rc 0 and a NaN test loss): one reduction per epoch.
void check_weights_finite(StageRun& run, const EpochReport& report) {
  std::vector<at::Tensor> finite;
  for (const auto& p : run.model.parameters()) finite.push_back(p.detach().isfinite().all());
  if (!finite.empty() && !at::stack(finite).all().item<bool>())
    throw std::runtime_error("stage '" + run.pos.stage + "' diverged in epoch " + std::to_string(report.epoch) +
                             ": the model's weights are no longer finite (train_loss " +
                             format_number(report.metrics.at("train_loss")) +
                             "). Lower [optimizer] lr, raise optimizer.eps, clip gradients ([precision] max_grad_norm) or "
                             "use amp-bf16; the last checkpoint, from before this epoch, is kept");
}

}  // namespace

void report_epoch(Loop& loop, StageRun& run, EpochSums& sums, double seconds) {
  TrainPosition& pos = run.pos;
  if (loop.dp.active()) sum_over_ranks(loop, run, sums);  // every rank reports the whole epoch
  EpochReport report = train_report(loop, run, sums, seconds);
  auto& m = report.metrics;

  // Validation runs on a callback's substitute (EMA weights) when one offers it; the live model's figures
  // are reported beside them.
  // [run] val_every skips validation (and on_validation_end) in all but every n-th epoch and the last.
  const bool validate = report.epoch % loop.options.val_every == 0 || report.epoch == run.info.epochs;
  loop.callbacks.train_epoch_end(report, run.model, loop.control);
  Model* substitute = loop.callbacks.eval_model(run.model);
  Model& evaluated = substitute ? *substitute : run.model;
  View val;
  val.indices = loop.dataset.indices(Split::Val).to(at::kLong).contiguous();
  m["val_loss"] = std::monostate{};
  m["val_accuracy"] = std::monostate{};
  if (validate && val.indices.numel() > 0) {
    const EvalResult r = loop.evaluator.evaluate(evaluated, val);
    m["val_loss"] = r.loss;
    m["val_accuracy"] = r.accuracy;
    if (substitute) {
      const EvalResult live = loop.evaluator.evaluate(run.model, val);
      m["live_val_loss"] = live.loss;
      m["live_val_accuracy"] = live.accuracy;
    }
  }
  for (const auto& [k, v] : loop.precision.call<&Precision::epoch_metrics>()) m[k] = v;
  for (const auto& [k, v] : loop.callbacks.epoch_metrics()) m[k] = v;
  if (validate) loop.callbacks.validation_end(report, evaluated, loop.control);

  MetricRecord record;
  record.kind = RecordKind::Epoch;
  record.stage = report.stage;
  record.round = report.round;
  record.epoch = report.epoch;
  record.step = report.step;
  record.values = report.metrics;
  loop.metrics.write(std::move(record));

  char line[256];
  std::snprintf(line, sizeof line, "[%s] epoch %lld/%lld: train_loss %.4f  val_accuracy %s  lr %.3g  %.0f samples/s  (%.1fs)",
                pos.stage.c_str(), static_cast<long long>(report.epoch), static_cast<long long>(run.info.epochs),
                *as_number(m["train_loss"]), format_number(m["val_accuracy"]).c_str(), *as_number(m["lr"]),
                *as_number(m["samples_per_second"]), seconds);
  loop.context.logger().info(line);

  check_weights_finite(run, report);
}

}  // namespace loom::host
