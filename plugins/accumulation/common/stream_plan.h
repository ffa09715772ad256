// Shared by the accumulation plugins: groups the stream of micro-batches of a whole training stage into
// optimizer steps, with exact loss weights.
//
// Why a stream and not one epoch at a time: with partial_last = "carry" an epoch's remainder joins the
// next epoch's first group, so a group can span epochs and its weights depend on micro-batches of the
// next epoch. Simulating the stage from its first epoch keeps plan() a pure function of the request (the
// host's contract) — micro-batch sizes are the same in every epoch of a stage.
#pragma once

#include <loom/accumulation.h>
#include <loom/params.h>

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::builtin::accumulation {

enum class PartialLast { Step, Drop, Carry };

inline ParamSpec partial_last_param() {
  return ParamSpec::choice("partial_last", "step", {"step", "drop", "carry"})
      .doc("an epoch's last, shorter group: step (weighted exactly), drop, or carry into the next epoch");
}

inline ParamSpec batchnorm_param() {
  return ParamSpec::choice("bn", "warn", {"warn", "freeze", "error"})
      .doc("BatchNorm models: warn (stats stay per micro-batch), freeze (eval-mode BN), or refuse");
}

inline PartialLast parse_partial_last(const std::string& s) {
  if (s == "drop") return PartialLast::Drop;
  if (s == "carry") return PartialLast::Carry;
  return PartialLast::Step;
}

inline Accumulation::BatchNormPolicy parse_batchnorm(const std::string& s) {
  if (s == "freeze") return Accumulation::BatchNormPolicy::Freeze;
  if (s == "error") return Accumulation::BatchNormPolicy::Error;
  return Accumulation::BatchNormPolicy::Warn;
}

/// `group_size(epoch, optimizer_step)`: micro-batches per optimizer step for a group that starts in
/// `epoch` after `optimizer_step` steps of the stage. Must return ≥ 1.
using GroupSize = std::function<int64_t(int64_t epoch, int64_t optimizer_step)>;

/// The plan of `request.epoch`: every group is weighted by samples (micro-batch samples / group samples),
/// so the applied gradient is the gradient of the mean loss over the group's samples.
inline EpochPlan plan_stream(const PlanRequest& request, PartialLast partial, const GroupSize& group_size) {
  const std::vector<int64_t>& sizes = request.micro_batch_sizes;
  const int64_t m = static_cast<int64_t>(sizes.size());
  struct Piece {
    int64_t epoch, first, count;
  };
  EpochPlan out;
  std::vector<Piece> open;  // the group being filled, possibly across epochs
  int64_t open_count = 0, open_samples = 0, target = 0, step = 0;

  auto close = [&](bool apply) {
    for (size_t p = 0; p < open.size(); ++p) {
      const Piece& piece = open[p];
      if (piece.epoch != request.epoch) continue;
      StepGroup g;
      g.first = piece.first;
      g.count = piece.count;
      g.step = apply && p + 1 == open.size();  // only the piece that completes the group steps
      for (int64_t i = 0; i < piece.count; ++i)
        g.loss_weights.push_back(static_cast<double>(sizes[static_cast<size_t>(piece.first + i)]) /
                                 static_cast<double>(open_samples));
      out.groups.push_back(std::move(g));
    }
    if (apply) ++step;
    open.clear();
    open_count = open_samples = 0;
  };

  const int64_t epochs = std::max(request.epochs, request.epoch + 1);
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    int64_t i = 0;
    while (i < m) {
      if (open.empty()) {
        target = group_size(epoch, step);
        if (target < 1) throw std::logic_error("accumulation: a group must hold at least one micro-batch");
      }
      const int64_t take = std::min(target - open_count, m - i);
      open.push_back({epoch, i, take});
      for (int64_t k = 0; k < take; ++k) open_samples += sizes[static_cast<size_t>(i + k)];
      open_count += take;
      i += take;
      if (open_count == target) close(true);
    }
    if (!open.empty()) {
      const bool last_epoch = epoch + 1 == epochs;
      if (partial == PartialLast::Step || (partial == PartialLast::Carry && last_epoch)) {
        close(true);
      } else if (partial == PartialLast::Drop) {
        open.clear();  // its micro-batches belong to no group: the host skips them
        open_count = open_samples = 0;
      }
      // Carry: the open group continues into the next epoch.
    }
    // Done once request.epoch is simulated and none of its micro-batches wait in an open group.
    if (epoch >= request.epoch &&
        std::none_of(open.begin(), open.end(), [&](const Piece& p) { return p.epoch == request.epoch; }))
      break;
  }
  // Pieces are emitted when their group closes; a carried group that closes in a later epoch can be
  // emitted after groups of that later epoch, so put request.epoch's groups back in order.
  std::sort(out.groups.begin(), out.groups.end(), [](const StepGroup& a, const StepGroup& b) { return a.first < b.first; });
  return out;
}

}  // namespace loom::builtin::accumulation
