// An accumulation strategy decides, per epoch, how micro-batches group into optimizer steps and what
// each micro-batch's loss weight is. The host applies it; it never touches gradients itself.
//
// Exactness rule: a group's weights should be (micro-batch samples / group samples), so the applied
// gradient equals the gradient of the mean loss over the group's samples — also for a shorter last group
// and for micro-batches of different sizes.
#pragma once

#include <loom/kinds.h>
#include <loom/state.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loom {

struct PlanRequest {
  int64_t epoch = 0;                         ///< 0-based epoch of the current training stage
  std::vector<int64_t> micro_batch_sizes;    ///< samples in each micro-batch of this epoch, in order
  int64_t optimizer_step = 0;                ///< optimizer steps taken before this epoch (this stage)
};

struct StepGroup {
  int64_t first = 0;                ///< index of the group's first micro-batch
  int64_t count = 0;                ///< consecutive micro-batches in the group
  std::vector<double> loss_weights; ///< one per micro-batch of the group
  /// false: do not step after this group; its gradients stay and join the next group (e.g. an epoch's
  /// remainder carried into the next epoch).
  bool step = true;
};

/// Groups in order, non-overlapping. Micro-batches in no group are skipped (e.g. a dropped remainder).
struct EpochPlan {
  std::vector<StepGroup> groups;
};

class Accumulation {
 public:
  static constexpr Kind kKind = Kind::Accumulation;
  virtual ~Accumulation() = default;

  /// The micro-batch size to load, given [loader] batch_size (a strategy may pick its own).
  virtual int64_t micro_batch_size(int64_t configured) { return configured; }
  virtual EpochPlan plan(const PlanRequest& request) = 0;

  virtual StateDict state_dict() const { return {}; }
  virtual void load_state_dict(const StateDict& state) { (void)state; }
};

}  // namespace loom
