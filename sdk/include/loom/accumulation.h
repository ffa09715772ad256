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
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace loom {

struct PlanRequest {
  int64_t epoch = 0;                         ///< 0-based epoch of the current training stage
  int64_t epochs = 1;                        ///< epochs in the stage (a remainder cannot carry past the last)
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
  virtual ~Accumulation() = default;

  /// Runs one forward + backward on a micro-batch of `size` samples of the training data (gradients are
  /// discarded) and returns the peak memory it needed in bytes, or nullopt when it did not fit (CUDA
  /// out-of-memory). On the CPU the peak is measured by the host's counting allocator.
  using MicroBatchProbe = std::function<std::optional<int64_t>(int64_t size)>;

  /// The micro-batch size to load, given [loader] batch_size (a strategy may pick its own, e.g. by
  /// probing). Called once per training stage, before plan().
  virtual int64_t micro_batch_size(int64_t configured, const MicroBatchProbe& probe) {
    (void)probe;
    return configured;
  }
  /// Must be a pure function of the request: the host calls it for every epoch up front (to size the LR
  /// schedule) and again on resume. Micro-batch sizes are the same in every epoch of a stage.
  virtual EpochPlan plan(const PlanRequest& request) = 0;

  /// What the host does when the model has BatchNorm layers and groups hold more than one micro-batch:
  /// accumulation does not enlarge BatchNorm's batch statistics (each micro-batch normalises alone).
  enum class BatchNormPolicy { Warn, Freeze, Error };
  virtual BatchNormPolicy batchnorm_policy() const { return BatchNormPolicy::Warn; }

  virtual StateDict state_dict() const { return {}; }
  virtual void load_state_dict(const StateDict& state) { (void)state; }
};

/// The accumulation kind.
template <>
struct KindTraits<Accumulation> : KindTraitsBase {
  static constexpr Kind kind = Kind::Accumulation;
  static constexpr std::string_view neutral = "none";
  static constexpr int order = 70;
};

}  // namespace loom
