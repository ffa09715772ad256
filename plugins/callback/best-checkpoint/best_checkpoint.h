// `best-checkpoint`: keeps the weights of the stage's top-k epochs by a monitored metric under
// checkpoints/<stage>/, and the best one as best.pt ([run] test_on = "best" tests it).
//
// The top-k list is per stage: best.pt ends up as the best epoch of the last stage, the one that produced
// the run's final model (a student's epochs are not comparable with its teacher's).
#pragma once

#include "../common/monitor.h"

#include <loom/callback.h>
#include <loom/context.h>
#include <loom/registrar.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace loom::builtin {

class BestCheckpoint final : public Callback {
 public:
  static FeatureInfo info();
  explicit BestCheckpoint(const CreateContext& ctx);

  void on_stage_start(const StageInfo& stage, Model& model, Control& control) override;
  void on_resume(const StageInfo& stage, Model& model, Control& control) override;
  void on_validation_end(const EpochReport& report, Model& model, Control& control) override;
  std::optional<std::filesystem::path> best_model() const override;

  /// {"values": float64 [n], "epochs": int64 [n]}: the stage's top-k, best first; file names derive from them.
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  struct Entry {
    double value;
    int64_t epoch;
  };
  /// checkpoints/<stage, '/' → '-'>, relative to the run directory.
  std::filesystem::path stage_dir() const;
  /// stage_dir()/epoch=<E>-<monitor>=<value %.4f>.pt.
  std::filesystem::path file_of(const Entry& entry) const;
  void summarize_best(Control& control) const;

  RunContext& run_;
  std::string monitor_;
  callback::Mode mode_;
  size_t top_k_;

  std::string stage_;
  std::vector<Entry> top_;  // best first; equal values in epoch order
};

}  // namespace loom::builtin
