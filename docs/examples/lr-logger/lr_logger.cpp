#include "lr_logger.h"

#include <ATen/ops/scalar_tensor.h>

#include <cstdio>
#include <stdexcept>

namespace example {

loom::FeatureInfo LrLogger::info() {
  return {.name = "lr-logger",
          .version = "1.0.0",
          .summary = "logs the learning rate and loss every N optimizer steps; adds lr_mean to each epoch's metrics",
          .params = {loom::ParamSpec::integer("every_n_steps", 10).at_least(1).doc("optimizer steps between two log lines")}};
}

// The params arrive validated and defaulted: every_n_steps is an integer >= 1 here.
LrLogger::LrLogger(const loom::CreateContext& ctx) : every_n_steps_(ctx.params.integer("every_n_steps")) {}

void LrLogger::on_stage_start(const loom::StageInfo& stage, loom::Model&, loom::Control& control) {
  stage_ = stage.stage;
  lr_sum_ = 0.0;
  steps_ = 0;
  if (control.primary())
    control.logger().info("lr-logger: stage '" + stage.stage + "': " + std::to_string(stage.total_steps) +
                          " optimizer steps planned, logging every " + std::to_string(every_n_steps_));
}

// A resumed process does not see on_stage_start again; load_state_dict() has already restored the sums.
void LrLogger::on_resume(const loom::StageInfo& stage, loom::Model&, loom::Control& control) {
  stage_ = stage.stage;
  if (control.primary()) control.logger().info("lr-logger: resuming stage '" + stage.stage + "'");
}

void LrLogger::on_optimizer_step(const loom::StepInfo& step, loom::Model&, loom::Control& control) {
  lr_sum_ += step.lr;
  ++steps_;
  // Every rank runs callbacks; only the primary one logs. step.loss lives on the training device: item()
  // waits for it, so read it only on the steps that are logged.
  if (step.step % every_n_steps_ != 0 || !control.primary()) return;
  char line[160];
  std::snprintf(line, sizeof line, "lr-logger: [%s] epoch %lld step %lld: lr %.6g loss %.4f", stage_.c_str(),
                static_cast<long long>(step.epoch), static_cast<long long>(step.step), step.lr, step.loss.item<double>());
  control.logger().info(line);
}

std::map<std::string, loom::MetricValue> LrLogger::epoch_metrics() {
  // Read once per epoch, before the epoch's record goes to the sinks: report, then start the next epoch.
  std::map<std::string, loom::MetricValue> out;
  out["lr_mean"] = steps_ > 0 ? loom::MetricValue(lr_sum_ / static_cast<double>(steps_)) : loom::MetricValue();
  lr_sum_ = 0.0;
  steps_ = 0;
  return out;
}

loom::StateDict LrLogger::state_dict() const {
  return {{"lr_sum", at::scalar_tensor(lr_sum_, at::TensorOptions().dtype(at::kDouble))},
          {"steps", at::scalar_tensor(steps_, at::TensorOptions().dtype(at::kLong))}};
}

void LrLogger::load_state_dict(const loom::StateDict& state) {
  const auto lr_sum = state.find("lr_sum");
  const auto steps = state.find("steps");
  if (lr_sum == state.end() || steps == state.end())
    throw std::invalid_argument("lr-logger: the checkpoint's state lacks lr_sum or steps");
  lr_sum_ = lr_sum->second.item<double>();
  steps_ = steps->second.item<int64_t>();
}

}  // namespace example
