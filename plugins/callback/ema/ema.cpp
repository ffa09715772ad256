#include "ema.h"

#include <ATen/ops/_foreach_lerp.h>
#include <ATen/ops/scalar_tensor.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace loom::builtin {

namespace {

// The EMA model and the live one, tensor by tensor. Float tensors are averaged; integer buffers
// (BatchNorm's num_batches_tracked) are counters that an average would corrupt, so they follow the live
// model instead.
struct Pairs {
  std::vector<at::Tensor> ema_float, live_float, ema_other, live_other;
};

Pairs pair_up(const Model& ema, const Model& live) {
  const std::vector<at::Tensor> ep = ema.parameters(), lp = live.parameters();
  const std::vector<at::Tensor> eb = ema.buffers(), lb = live.buffers();
  // Same architecture means same order; a different count means clone_model() broke its contract, and
  // pairing by position would silently average unrelated tensors.
  if (ep.size() != lp.size() || eb.size() != lb.size())
    throw std::logic_error("ema: the EMA model has " + std::to_string(ep.size()) + " parameters and " +
                           std::to_string(eb.size()) + " buffers, the live model " + std::to_string(lp.size()) +
                           " and " + std::to_string(lb.size()) + " (clone_model() returned another architecture)");
  Pairs pairs;
  auto add = [&pairs](const at::Tensor& e, const at::Tensor& l) {
    if (e.is_floating_point()) {
      pairs.ema_float.push_back(e);
      pairs.live_float.push_back(l);
    } else {
      pairs.ema_other.push_back(e);
      pairs.live_other.push_back(l);
    }
  };
  for (size_t i = 0; i < ep.size(); ++i) add(ep[i], lp[i]);
  for (size_t i = 0; i < eb.size(); ++i) add(eb[i], lb[i]);
  return pairs;
}

void copy_all(const Model& from, Model& to) {
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor> fp = from.parameters(), tp = to.parameters();
  const std::vector<at::Tensor> fb = from.buffers(), tb = to.buffers();
  for (size_t i = 0; i < tp.size(); ++i) tp[i].copy_(fp[i]);
  for (size_t i = 0; i < tb.size(); ++i) tb[i].copy_(fb[i]);
}

}  // namespace

FeatureInfo Ema::info() {
  return {.name = "ema",
          .version = "1.0.0",
          .summary = "exponential moving average of the weights: validate on it, keep it as the stage's result",
          .params = {
              ParamSpec::real("decay", 0.999).range(0.0, 1.0).doc("weight of the old average per update, below 1"),
              ParamSpec::boolean("warmup", true).doc("decay min(decay, (1 + t) / (10 + t)) after t updates, so early weights fade fast"),
              ParamSpec::integer("every_n_steps", 1).at_least(1).doc("update after every n-th optimizer step of the stage"),
              ParamSpec::boolean("evaluate", true).doc("validate (and pick best checkpoints) on the EMA weights"),
              ParamSpec::boolean("apply_at_end", true).doc("copy the EMA weights into the model when a stage ends"),
          }};
}

Ema::Ema(const CreateContext& ctx)
    : decay_(ctx.params.real("decay")),
      warmup_(ctx.params.boolean("warmup")),
      every_n_steps_(ctx.params.integer("every_n_steps")),
      evaluate_(ctx.params.boolean("evaluate")),
      apply_at_end_(ctx.params.boolean("apply_at_end")) {
  // The schema's bounds are inclusive, and decay 1 would freeze the average at the initial weights.
  if (decay_ >= 1.0)
    throw std::invalid_argument("ema: decay = 1 would keep the initial weights forever; use a value below 1 (0.999, 0.9999)");
}

double Ema::decay_after(int64_t done) const {
  if (!warmup_) return decay_;
  const double t = static_cast<double>(done);
  return std::min(decay_, (1.0 + t) / (10.0 + t));
}

void Ema::start_from(Model& model, Control& control) {
  ema_ = control.clone_model(model);
  // Dropout off and BatchNorm on its running statistics whenever the average is evaluated, and nobody's
  // forward pass may update those statistics behind the average's back.
  ema_->eval();
  updates_ = 0;
}

void Ema::on_stage_start(const StageInfo&, Model& model, Control& control) {
  // Each stage averages its own trajectory: a student must not inherit the teacher's average.
  start_from(model, control);
  loaded_.clear();
}

void Ema::on_resume(const StageInfo& stage, Model& model, Control& control) {
  start_from(model, control);
  if (loaded_.empty()) {
    control.logger().warn("ema: the checkpoint holds no EMA state for stage '" + stage.stage +
                          "' (was the callback added on resume?); averaging restarts from the checkpoint's weights");
    return;
  }
  at::NoGradGuard no_grad;
  auto loaded = [this](const std::string& key) -> const at::Tensor& {
    auto it = loaded_.find(key);
    if (it == loaded_.end())
      throw std::runtime_error("ema: the checkpoint's EMA state has no '" + key +
                               "' (it was written for another [model] architecture)");
    return it->second;
  };
  for (auto& item : ema_->named_parameters()) item.value().copy_(loaded("param/" + item.key()));
  for (auto& item : ema_->named_buffers()) item.value().copy_(loaded("buffer/" + item.key()));
  updates_ = loaded("updates").item<int64_t>();
  loaded_.clear();
}

void Ema::on_optimizer_step(const StepInfo& step, Model& model, Control&) {
  if (!ema_ || step.step % every_n_steps_ != 0) return;
  const double decay = decay_after(updates_);
  at::NoGradGuard no_grad;
  Pairs pairs = pair_up(*ema_, model);
  // ema = decay * ema + (1 - decay) * live; one fused call per list on CUDA instead of a kernel per tensor.
  if (!pairs.ema_float.empty()) at::_foreach_lerp_(pairs.ema_float, pairs.live_float, 1.0 - decay);
  for (size_t i = 0; i < pairs.ema_other.size(); ++i) pairs.ema_other[i].copy_(pairs.live_other[i]);
  ++updates_;
}

Model* Ema::eval_model(Model&) { return evaluate_ ? ema_.get() : nullptr; }

std::map<std::string, MetricValue> Ema::epoch_metrics() {
  return {{"ema_decay", updates_ > 0 ? MetricValue(decay_after(updates_ - 1)) : MetricValue()},
          {"ema_updates", MetricValue(updates_)}};
}

void Ema::on_stage_end(const StageInfo& stage, Model& model, Control& control) {
  if (!ema_) return;
  if (control.primary()) control.save_weights(*ema_, "model_ema.pt");
  if (apply_at_end_) {
    copy_all(*ema_, model);
    control.logger().info("ema: stage '" + stage.stage + "' ends with the average of " + std::to_string(updates_) +
                          " updates in the model");
  }
}

StateDict Ema::state_dict() const {
  if (!ema_) return {};
  StateDict state;
  // Snapshots, not views: the host may still be writing the checkpoint when the next update runs.
  for (const auto& item : ema_->named_parameters()) state["param/" + item.key()] = item.value().detach().clone();
  for (const auto& item : ema_->named_buffers()) state["buffer/" + item.key()] = item.value().detach().clone();
  state["updates"] = at::scalar_tensor(updates_, at::kLong);
  return state;
}

void Ema::load_state_dict(const StateDict& state) { loaded_ = state; }

}  // namespace loom::builtin
