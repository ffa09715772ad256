#include "early_stopping.h"

#include <ATen/ops/scalar_tensor.h>

#include <cmath>
#include <limits>

namespace loom::builtin {

FeatureInfo EarlyStopping::info() {
  ParamSpec threshold = ParamSpec::real("stopping_threshold", 0.0)
                            .doc("stop as soon as the monitor is at least this good (unset: never)");
  // Optional without a default: Params::has() then tells "unset" from any value a user could pick.
  threshold.default_value.reset();
  return {.name = "early-stopping",
          .version = "1.0.0",
          .summary = "ends a stage when the monitored metric stops improving, reaches a target or diverges",
          .params = {
              callback::monitor_param("val_loss"),
              callback::mode_param(),
              ParamSpec::integer("patience", 3).at_least(1).doc("validation checks without improvement before stopping"),
              ParamSpec::real("min_delta", 0.0).at_least(0.0).doc("an improvement must beat the best by more than this"),
              threshold,
              ParamSpec::boolean("check_finite", true).doc("stop when the monitor is NaN or infinite"),
          }};
}

EarlyStopping::EarlyStopping(const CreateContext& ctx)
    : monitor_(ctx.params.str("monitor")),
      mode_(callback::parse_mode(ctx.params.str("mode"), monitor_)),
      patience_(ctx.params.integer("patience")),
      min_delta_(ctx.params.real("min_delta")),
      threshold_(ctx.params.has("stopping_threshold") ? std::optional(ctx.params.real("stopping_threshold"))
                                                       : std::nullopt),
      check_finite_(ctx.params.boolean("check_finite")) {}

void EarlyStopping::on_stage_start(const StageInfo&, Model&, Control&) {
  // A new stage (a student after its teacher) trains a new model; the old best says nothing about it.
  best_.reset();
  best_epoch_ = 0;
  wait_ = 0;
}

void EarlyStopping::on_validation_end(const EpochReport& report, Model&, Control& control) {
  const double value = callback::monitored_value(report, monitor_, "early-stopping");
  const std::string at_epoch = " at epoch " + std::to_string(report.epoch);
  if (!std::isfinite(value) && check_finite_) {
    control.stop_stage("early-stopping: " + monitor_ + " is " + callback::short_number(value) + at_epoch +
                       " — training diverged; lower [optimizer] lr, or use [precision] plugin = \"amp-bf16\" "
                       "(or \"fp32\") instead of amp-fp16");
    return;
  }
  // A non-finite value never counts as an improvement, so it cannot become the best either.
  if (std::isfinite(value) && (!best_ || callback::beats(mode_, value, *best_, min_delta_))) {
    best_ = value;
    best_epoch_ = report.epoch;
    wait_ = 0;
  } else {
    ++wait_;
  }
  if (threshold_ && std::isfinite(value) && !callback::beats(mode_, *threshold_, value)) {
    control.stop_stage("early-stopping: " + monitor_ + " reached " + callback::short_number(value) + at_epoch +
                       " (stopping_threshold " + callback::short_number(*threshold_) + ")");
    return;
  }
  if (wait_ >= patience_) {
    control.stop_stage("early-stopping: " + monitor_ + " did not improve by more than " +
                       callback::short_number(min_delta_) + " for " + std::to_string(wait_) + " validation checks (best " +
                       (best_ ? callback::short_number(*best_) : std::string("none")) + " at epoch " +
                       std::to_string(best_epoch_) + ")");
  }
}

void EarlyStopping::on_stage_end(const StageInfo& stage, Model&, Control& control) {
  if (!best_) return;
  control.summarize(stage.stage + "/early_stopping_best", *best_);
  control.summarize(stage.stage + "/early_stopping_best_epoch", best_epoch_);
}

StateDict EarlyStopping::state_dict() const {
  return {{"best", at::scalar_tensor(best_.value_or(std::numeric_limits<double>::quiet_NaN()), at::kDouble)},
          {"best_epoch", at::scalar_tensor(best_epoch_, at::kLong)},
          {"wait", at::scalar_tensor(wait_, at::kLong)}};
}

void EarlyStopping::load_state_dict(const StateDict& state) {
  // A checkpoint from before the callback was added holds nothing: start counting afresh.
  if (state.empty()) return;
  const double best = state.at("best").item<double>();
  best_ = std::isnan(best) ? std::nullopt : std::optional(best);
  best_epoch_ = state.at("best_epoch").item<int64_t>();
  wait_ = state.at("wait").item<int64_t>();
}

}  // namespace loom::builtin
