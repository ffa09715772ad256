// `early-stopping`: ends a stage when the monitored metric has stopped improving for `patience`
// validation checks, when it reaches a target, or when it is no longer finite (a diverged run).
#pragma once

#include "../common/monitor.h"

#include <loom/callback.h>
#include <loom/context.h>
#include <loom/registrar.h>

#include <cstdint>
#include <optional>
#include <string>

namespace loom::builtin {

class EarlyStopping final : public Callback {
 public:
  static FeatureInfo info();
  explicit EarlyStopping(const CreateContext& ctx);

  void on_stage_start(const StageInfo& stage, Model& model, Control& control) override;
  void on_validation_end(const EpochReport& report, Model& model, Control& control) override;
  void on_stage_end(const StageInfo& stage, Model& model, Control& control) override;

  /// {"best": double (NaN before the first check), "best_epoch": int64, "wait": int64}.
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  std::string monitor_;
  callback::Mode mode_;
  int64_t patience_;
  double min_delta_;
  std::optional<double> threshold_;
  bool check_finite_;

  std::optional<double> best_;
  int64_t best_epoch_ = 0;
  int64_t wait_ = 0;  // validation checks since the last improvement
};

}  // namespace loom::builtin
