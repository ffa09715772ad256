// `pseudo-label`: teacher → student self-training rounds (Lee 2013; Yalniz et al. 2019; Noisy Student).
//
// Round 0 trains a teacher on the labeled split. Each round r = 1..rounds then predicts the unlabeled
// pool with the current teacher (eval mode, no augmentation: the host's predict()), selects pseudo labels
// (selection.h), records them (provenance.h), trains a student on labeled + selected (student_data.h),
// optionally fine-tunes it on the labeled split alone, evaluates it, and makes it the next teacher.
// docs/self-training.md is the user's guide.
#pragma once

#include "selection.h"

#include <loom/plugin.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace loom::pseudo_label {

class RoundLog;
struct StudentData;

/// The plugin's params, read once from the validated schema values.
struct Options {
  int64_t rounds = 1;
  int64_t pool_size = 0;        ///< 0: the whole unlabeled split
  int64_t teacher_epochs = 0;   ///< 0: [run] epochs
  int64_t student_epochs = 0;   ///< 0: [run] epochs
  int64_t finetune_epochs = 0;  ///< 0: no fine-tuning
  SelectionOptions selection;
  bool soft = false;
  double temperature = 1.0;
  double pseudo_weight = 1.0;
  double labeled_share = 0.0;
  bool init_from_teacher = false;
  bool noise = true;
  std::vector<double> percentiles;         ///< selection = curriculum: round r uses percentiles[r - 1]
  std::string teacher_augmentation;        ///< the round-0 teacher's pipeline
  std::string student_augmentation;        ///< students' (and fine-tuning's) pipeline when noise is on
  enum class PredictWith { Teacher, Ema, Live } predict_with = PredictWith::Teacher;

  explicit Options(const Params& params);
  /// The selection rule and label settings as recorded in each round's JSON.
  nlohmann::json describe() const;
};

class PseudoLabel final : public SelfTraining {
 public:
  static FeatureInfo info();
  explicit PseudoLabel(const CreateContext& ctx);
  std::shared_ptr<Model> run(TrainerServices& services) override;

 private:
  /// What one round selected, for its metrics; empty for round 0.
  struct RoundStats {
    const Selection* selection = nullptr;
    const StudentData* student = nullptr;
    at::Tensor hidden_labels;  ///< the dataset's labels of the selected samples (-1: unknown)
    at::Tensor confusion;      ///< int64 [C, C]: hidden label (row) by pseudo label (column); undefined: unknown
    double pool_accuracy = -1.0;  ///< the teacher's accuracy on the whole pool; < 0 when unknown
  };

  /// Predicts the pool, selects, writes the round's provenance; returns the selection and predictions.
  Selection select_round(TrainerServices& services, Model& teacher, int64_t round, const std::string& teacher_stage,
                         const View& pool, at::Tensor* probabilities, double* pool_accuracy);
  /// The model whose predictions label the pool: the teacher itself, or its stage's EMA or live weights.
  std::shared_ptr<Model> predictor(TrainerServices& services, const std::shared_ptr<Model>& teacher,
                                   const std::string& teacher_stage) const;
  /// Evaluates `model` on val and test, summarizes, and logs the round's metrics unless a resumed run
  /// already did.
  void finish_round(TrainerServices& services, RoundLog& log, int64_t round, const std::string& stage, Model& model,
                    const RoundStats& stats);

  Options options_;
  RunContext& run_;
  std::vector<std::string> class_names_;
};

}  // namespace loom::pseudo_label
