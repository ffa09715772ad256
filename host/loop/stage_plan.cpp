#include "loop/stage_plan.h"

#include "loop/loader.h"
#include "loop/loss.h"
#include "loop/memory.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <mutex>

namespace loom::host {

namespace {

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

std::vector<std::shared_ptr<torch::nn::Module>> batchnorm_modules(torch::nn::Module& model) {
  std::vector<std::shared_ptr<torch::nn::Module>> out;
  for (const auto& m : model.modules(/*include_self=*/false))
    if (m->name().find("BatchNorm") != std::string::npos) out.push_back(m);
  return out;
}

}  // namespace

StagePlan StagePlanner::plan(Model& model, const View& view, int64_t configured_batch, int64_t epochs, bool& warned) const {
  StagePlan out;
  const int64_t n = view.indices.size(0);
  int64_t batch = accumulation.call<&Accumulation::micro_batch_size>(
      configured_batch, Accumulation::MicroBatchProbe([&](int64_t size) { return probe(model, view, size); }));
  if (batch <= 0)
    throw PluginError(accumulation.who().describe() + " chose a micro-batch size of " + std::to_string(batch));
  batch = dp.agree(batch);  // a probed size may differ between ranks: rank 0's is everyone's
  out.micro_batch = batch;
  // The plan is over global micro-batches (world × batch samples each; each rank holds its block of them),
  // so accumulation, the LR schedule and the loss weights mean the same at any world size.
  out.sizes = micro_batch_sizes(n, batch * dp.world());
  int64_t steps = 0;
  for (int64_t e = 0; e < epochs; ++e) {
    EpochPlan plan = accumulation.call<&Accumulation::plan>(PlanRequest{e, epochs, out.sizes, steps});
    int64_t next = 0;
    for (const StepGroup& g : plan.groups) {
      if (g.first < next || g.count <= 0 || g.first + g.count > static_cast<int64_t>(out.sizes.size()) ||
          static_cast<int64_t>(g.loss_weights.size()) != g.count)
        throw PluginError(accumulation.who().describe() + " returned an invalid plan for epoch " + std::to_string(e) +
                          ": group at micro-batch " + std::to_string(g.first) + " (count " + std::to_string(g.count) + ", " +
                          std::to_string(g.loss_weights.size()) + " weights) overlaps, is empty or leaves the " +
                          std::to_string(out.sizes.size()) + " micro-batches");
      next = g.first + g.count;
      if (g.step) ++steps;
    }
    out.epochs.push_back(std::move(plan));
  }
  out.total_steps = steps;

  out.batchnorms = batchnorm_modules(model);
  bool accumulates = false;
  for (const auto& plan : out.epochs)
    for (const auto& g : plan.groups) accumulates = accumulates || g.count > 1 || !g.step;
  if (out.batchnorms.empty() || !accumulates) return out;
  const std::string what = "the model has " + std::to_string(out.batchnorms.size()) + " BatchNorm layer(s) and " +
                           accumulation.who().describe() +
                           " groups micro-batches: BatchNorm still normalises each micro-batch of " + std::to_string(batch) +
                           " samples alone (accumulation does not enlarge its batch statistics)";
  switch (accumulation.call<&Accumulation::batchnorm_policy>()) {
    case Accumulation::BatchNormPolicy::Warn:
      if (!warned) logger.warn(what + "; set bn = \"freeze\" to use running statistics instead, or bn = \"error\" to refuse");
      warned = true;
      break;
    case Accumulation::BatchNormPolicy::Freeze:
      out.freeze_batchnorm = true;
      logger.info(what + "; bn = \"freeze\": BatchNorm layers run in eval mode (running statistics, not updated)");
      break;
    case Accumulation::BatchNormPolicy::Error:
      throw std::runtime_error(what + ". [accumulation] bn = \"error\" refuses this; use bn = \"freeze\" or \"warn\", or a model without BatchNorm");
  }
  return out;
}

std::optional<int64_t> StagePlanner::probe(Model& model, const View& view, int64_t size) const {
  const int64_t n = view.indices.size(0);
  if (size <= 0) return std::nullopt;
  size = std::min(size, n);
  const at::Tensor positions = at::arange(size, at::kLong);
  const at::Tensor indices = view.indices.index_select(0, positions);
  at::Tensor x = dataset.load(indices).to(device);
  if (x.dim() == 4) x = x.contiguous(models.of(model).input_format);  // as the loader hands batches over
  at::Tensor y = (view.targets.defined() ? view.targets.index_select(0, positions) : labels.index_select(0, indices)).to(device);
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
      auto scope = precision.call<&Precision::forward_scope>(device);
      loss = per_sample_loss(guarded(models.of(model).who, "forward", [&] { return model.forward(x); }), y).mean();
    }
    loss.backward();
    result = device.is_cpu() && CpuMemoryTracker::installed() ? CpuMemoryTracker::peak_bytes() - before : 0;
  } catch (const c10::OutOfMemoryError&) {
    result.reset();
  } catch (const PluginError& e) {
    // guarded() turned an out-of-memory error inside forward into a PluginError: still just "does not fit".
    if (std::string(e.what()).find("out of memory") == std::string::npos) throw;
    result.reset();
  }
  model.zero_grad();
  model.train(was_training);
  torch::NoGradGuard no_grad;
  auto live = model.buffers();
  for (size_t i = 0; i < live.size(); ++i) live[i].copy_(buffers[i]);
  set_cpu_rng_state(rng);
  logger.debug("micro-batch probe: " + std::to_string(size) + " samples → " +
               (result ? std::to_string(*result / (1024 * 1024)) + " MiB" : std::string("out of memory")));
  return result;
}

}  // namespace loom::host
