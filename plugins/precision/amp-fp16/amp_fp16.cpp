#include "amp_fp16.h"

#include "../common/precision_common.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

namespace loom::builtin {

namespace pc = precision_common;

namespace {

struct GradBucket {
  c10::Device device;
  at::ScalarType dtype;
  std::vector<at::Tensor> grads;
};

at::Tensor on(const at::Tensor& t, c10::Device device) { return t.device() == device ? t : t.to(device); }

at::Tensor scalar_from(const StateDict& state, const std::string& key, at::ScalarType dtype) {
  const auto it = state.find(key);
  if (it == state.end() || !it->second.defined())
    throw std::invalid_argument("amp-fp16: checkpointed state has no '" + key + "'");
  if (it->second.numel() != 1)
    throw std::invalid_argument("amp-fp16: checkpointed '" + key + "' has " + std::to_string(it->second.numel()) +
                                " elements, expected 1");
  return it->second.detach().to(at::kCPU).to(dtype).reshape({});
}

}  // namespace

FeatureInfo AmpFp16::info() {
  return {
      .name = "amp-fp16",
      .version = "1.0.0",
      .summary = "mixed precision: autocast to float16 plus a dynamic loss scaler (torch.amp.GradScaler semantics)",
      .params = {
          pc::max_grad_norm_param(),
          pc::memory_format_param(),
          pc::channels_last_removed_param(),
          ParamSpec::boolean("cache_enabled", true)
              .doc("autocast's weight-cast cache inside a forward scope (torch.autocast's cache_enabled)"),
          ParamSpec::boolean("loss_scaling", true)
              .doc("dynamic loss scaling; false = float16 autocast only, like GradScaler(enabled=False)"),
          ParamSpec::real("init_scale", 65536.0).at_least(1e-30).doc("initial loss scale (GradScaler's init_scale)"),
          ParamSpec::real("growth_factor", 2.0).at_least(1.0)
              .doc("scale multiplier after growth_interval steps without inf/NaN; must be > 1"),
          ParamSpec::real("backoff_factor", 0.5).range(0.0, 1.0)
              .doc("scale multiplier when a step has inf/NaN gradients (the step is skipped); in (0, 1)"),
          ParamSpec::integer("growth_interval", 2000).at_least(1)
              .doc("consecutive optimizer steps without inf/NaN before the scale grows"),
          ParamSpec::real("min_scale", 0.0).at_least(0.0)
              .doc("floor for the loss scale; 0 = none (as GradScaler); keeps a broken run from driving it to 0"),
      },
  };
}

AmpFp16::AmpFp16(const CreateContext& ctx)
    : logger_(ctx.run.logger()),
      max_grad_norm_(ctx.params.real("max_grad_norm")),
      memory_format_(ctx.params.str("memory_format")),
      cache_enabled_(ctx.params.boolean("cache_enabled")),
      scaling_(ctx.params.boolean("loss_scaling")),
      growth_factor_(ctx.params.real("growth_factor")),
      backoff_factor_(ctx.params.real("backoff_factor")),
      growth_interval_(ctx.params.integer("growth_interval")),
      min_scale_(ctx.params.real("min_scale")) {
  const double init_scale = ctx.params.real("init_scale");
  // GradScaler asserts the same (growth_factor > 1, backoff_factor < 1); the schema holds the closed bounds.
  if (!(growth_factor_ > 1.0))
    throw std::invalid_argument("amp-fp16: growth_factor must be > 1, got " + std::to_string(growth_factor_));
  if (!(backoff_factor_ > 0.0 && backoff_factor_ < 1.0))
    throw std::invalid_argument("amp-fp16: backoff_factor must be in (0, 1), got " + std::to_string(backoff_factor_));
  if (min_scale_ > init_scale)
    throw std::invalid_argument("amp-fp16: min_scale (" + std::to_string(min_scale_) + ") is above init_scale (" +
                                std::to_string(init_scale) + ")");
  // As GradScaler._lazy_init_scale_growth_tracker: float32 scale, int32 tracker.
  scale_ = at::full({}, init_scale, at::TensorOptions().dtype(at::kFloat));
  growth_tracker_ = at::zeros({}, at::TensorOptions().dtype(at::kInt));
}

PreparedModel AmpFp16::prepare(torch::nn::Module& model, c10::Device device) {
  pc::require_autocast(device.type(), "amp-fp16");
  PreparedModel prepared = pc::apply_memory_format(memory_format_, model, device, /*reduced=*/true);
  if (device.is_cpu())
    logger_.info("amp-fp16 on the CPU: LibTorch autocasts to float16 here, but without native float16 "
                 "arithmetic (AVX512-FP16/AMX-FP16) it is usually slower than fp32; amp-bf16 is the CPU choice");
  return prepared;
}

std::unique_ptr<ForwardScope> AmpFp16::forward_scope(c10::Device device) {
  pc::require_autocast(device.type(), "amp-fp16");
  return std::make_unique<pc::AutocastScope>(device.type(), at::kHalf, cache_enabled_);
}

void AmpFp16::place_on(c10::Device device) {
  if (placed_) return;
  scale_ = scale_.to(device);
  growth_tracker_ = growth_tracker_.to(device);
  placed_ = true;
}

void AmpFp16::backward(const at::Tensor& loss) {
  if (!scaling_) {
    loss.backward();
    return;
  }
  place_on(loss.device());
  (loss * on(scale_, loss.device())).backward();
}

StepResult AmpFp16::step(torch::optim::Optimizer& optimizer) {
  StepResult result;
  if (!scaling_) {
    result.grad_norm = pc::clip_gradients(optimizer, max_grad_norm_);
    optimizer.step();
    return result;
  }

  // Unscale exactly once per optimizer step, before anything (clipping, the step) reads the gradients.
  std::vector<GradBucket> buckets;
  for (const at::Tensor& p : pc::optimizer_parameters(optimizer)) {
    at::Tensor grad = p.grad();
    if (!grad.defined()) continue;
    if (grad.scalar_type() == at::kHalf)
      throw std::runtime_error("amp-fp16: attempting to unscale float16 gradients; keep the model's parameters "
                               "float32 (autocast casts them for the forward pass)");
    if (grad.is_sparse()) grad = grad._values();
    GradBucket* bucket = nullptr;
    for (GradBucket& b : buckets)
      if (b.device == grad.device() && b.dtype == grad.scalar_type()) bucket = &b;
    if (!bucket) bucket = &buckets.emplace_back(GradBucket{grad.device(), grad.scalar_type(), {}});
    bucket->grads.push_back(grad);
  }
  if (buckets.empty())
    throw std::logic_error("amp-fp16: step() without gradients (no inf checks were recorded for this optimizer)");
  place_on(buckets.front().device);

  // As GradScaler.unscale_: the reciprocal in double, then float32; a found_inf flag per device.
  const at::Tensor inv_scale = scale_.to(at::kDouble).reciprocal().to(at::kFloat);
  const at::Tensor found_inf = at::zeros({}, scale_.options().dtype(at::kFloat));
  std::vector<std::pair<c10::Device, at::Tensor>> per_device;
  for (GradBucket& b : buckets) {
    at::Tensor* flag = nullptr;
    for (auto& [device, f] : per_device)
      if (device == b.device) flag = &f;
    if (!flag) flag = &per_device.emplace_back(b.device, at::zeros({}, found_inf.options().device(b.device))).second;
    at::_amp_foreach_non_finite_check_and_unscale_(b.grads, *flag, on(inv_scale, b.device));
  }
  for (const auto& [device, f] : per_device) found_inf.add_(on(f, found_inf.device()));

  // The one device→host sync per optimizer step: optimizer.step() must not run on inf/NaN gradients, and
  // the host must know whether to advance the LR schedule (Python's GradScaler.step syncs here as well).
  const bool non_finite = found_inf.item<float>() != 0.0f;
  if (!non_finite) {
    result.grad_norm = pc::clip_gradients(optimizer, max_grad_norm_);  // on the unscaled gradients
    optimizer.step();
  }
  at::_amp_update_scale_(scale_, growth_tracker_, found_inf, growth_factor_, backoff_factor_, growth_interval_);
  if (min_scale_ > 0.0) scale_.clamp_min_(min_scale_);

  result.skipped = non_finite;
  if (non_finite) {
    ++epoch_skipped_;
    ++consecutive_skipped_;
    // Gradients still inf/NaN with a scale below 1 are not float16 overflow: the loss or the model is
    // non-finite itself, and GradScaler would keep halving the scale towards 0. Say so once per streak
    // (reading the scale is a sync, but only on skipped steps).
    if (!warned_streak_ && scale_.item<double>() < 1.0) {
      warned_streak_ = true;
      char line[400];
      std::snprintf(line, sizeof line,
                    "amp-fp16: %lld optimizer steps in a row skipped for inf/NaN gradients and the loss scale is "
                    "down to %g: the loss or the model is non-finite by itself, not overflowing float16 (check "
                    "the data and the learning rate; min_scale stops the scale falling further)",
                    static_cast<long long>(consecutive_skipped_), scale_.item<double>());
      logger_.warn(line);
    }
  } else {
    consecutive_skipped_ = 0;
    warned_streak_ = false;
  }
  return result;
}

StateDict AmpFp16::state_dict() const {
  if (!scaling_) return {};
  return {{"scale", scale_.detach().to(at::kCPU).clone()},
          {"growth_tracker", growth_tracker_.detach().to(at::kCPU).clone()},
          {"epoch_skipped_steps", at::scalar_tensor(epoch_skipped_, at::TensorOptions().dtype(at::kLong))}};
}

void AmpFp16::load_state_dict(const StateDict& state) {
  if (!scaling_ || state.empty()) return;
  const at::Tensor scale = scalar_from(state, "scale", at::kFloat);
  const double value = scale.item<double>();
  if (!std::isfinite(value) || value < 0.0)
    throw std::invalid_argument("amp-fp16: checkpointed loss scale " + std::to_string(value) + " is not usable");
  scale_.copy_(scale);
  if (min_scale_ > 0.0) scale_.clamp_min_(min_scale_);
  growth_tracker_.copy_(scalar_from(state, "growth_tracker", at::kInt));
  if (state.count("epoch_skipped_steps")) epoch_skipped_ = scalar_from(state, "epoch_skipped_steps", at::kLong).item<int64_t>();
  consecutive_skipped_ = 0;
  warned_streak_ = false;
}

std::map<std::string, MetricValue> AmpFp16::epoch_metrics() {
  const int64_t skipped = epoch_skipped_;
  epoch_skipped_ = 0;
  return {{"loss_scale", scaling_ ? scale_.item<double>() : 1.0}, {"skipped_steps", skipped}};
}

}  // namespace loom::builtin
