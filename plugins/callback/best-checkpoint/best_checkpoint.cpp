#include "best_checkpoint.h"

#include <ATen/ops/tensor.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <system_error>

namespace loom::builtin {

namespace fs = std::filesystem;

FeatureInfo BestCheckpoint::info() {
  return {.name = "best-checkpoint",
          .version = "1.0.0",
          .summary = "keeps the weights of each stage's top-k epochs by a metric, and the best as best.pt",
          .params = {
              callback::monitor_param("val_accuracy"),
              callback::mode_param(),
              ParamSpec::integer("save_top_k", 1).at_least(1).doc("epochs of the stage whose weights are kept"),
          }};
}

BestCheckpoint::BestCheckpoint(const CreateContext& ctx)
    : run_(ctx.run),
      monitor_(ctx.params.str("monitor")),
      mode_(callback::parse_mode(ctx.params.str("mode"), monitor_)),
      top_k_(static_cast<size_t>(ctx.params.integer("save_top_k"))) {}

fs::path BestCheckpoint::stage_dir() const {
  // One directory level per stage: "round1/student" would otherwise nest a student inside "round1".
  std::string dir = stage_;
  std::replace(dir.begin(), dir.end(), '/', '-');
  return fs::path("checkpoints") / dir;
}

fs::path BestCheckpoint::file_of(const Entry& entry) const {
  char value[64];
  std::snprintf(value, sizeof value, "%.4f", entry.value);
  return stage_dir() / ("epoch=" + std::to_string(entry.epoch) + "-" + monitor_ + "=" + value + ".pt");
}

void BestCheckpoint::on_stage_start(const StageInfo& stage, Model&, Control&) {
  stage_ = stage.stage;
  top_.clear();
}

void BestCheckpoint::on_resume(const StageInfo& stage, Model&, Control& control) {
  stage_ = stage.stage;
  if (!top_.empty()) summarize_best(control);
  if (!control.primary()) return;
  // A process killed between saving an epoch's file and writing the checkpoint leaves files the restored
  // list does not know; the epoch runs again, so they are stale (or will be written anew).
  std::set<fs::path> kept;
  for (const Entry& e : top_) kept.insert(file_of(e).filename());
  const fs::path dir = run_.run_dir() / stage_dir();
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("epoch=", 0) == 0 && it->path().extension() == ".pt" && !kept.count(it->path().filename()))
      fs::remove(it->path(), ec);
  }
}

void BestCheckpoint::on_validation_end(const EpochReport& report, Model& model, Control& control) {
  const double value = callback::monitored_value(report, monitor_, "best-checkpoint");
  // A diverged epoch's weights are never "best", whatever the comparison of NaN would say.
  if (!std::isfinite(value)) return;
  // After every entry it does not beat: a tie keeps the earlier epoch ahead.
  const auto at = std::find_if(top_.begin(), top_.end(),
                               [&](const Entry& e) { return callback::beats(mode_, value, e.value); });
  const size_t rank = static_cast<size_t>(at - top_.begin());
  if (rank >= top_k_) return;
  const Entry entry{value, report.epoch};
  top_.insert(at, entry);
  // Write the new file before deleting the one it displaces, so an interruption never leaves fewer than k.
  control.save_weights(model, file_of(entry));
  if (rank == 0) {
    control.save_weights(model, "best.pt");
    summarize_best(control);
  }
  if (top_.size() > top_k_) {
    const fs::path dropped = file_of(top_.back());
    top_.pop_back();
    if (control.primary()) {
      std::error_code ec;
      fs::remove(run_.run_dir() / dropped, ec);
      if (ec) control.logger().warn("best-checkpoint: could not delete " + dropped.string() + ": " + ec.message());
    }
  }
}

void BestCheckpoint::summarize_best(Control& control) const {
  control.summarize("best_stage", stage_);
  control.summarize("best_epoch", top_.front().epoch);
  control.summarize("best_monitor", monitor_);
  control.summarize("best_value", top_.front().value);
}

std::optional<fs::path> BestCheckpoint::best_model() const { return run_.run_dir() / "best.pt"; }

StateDict BestCheckpoint::state_dict() const {
  std::vector<double> values;
  std::vector<int64_t> epochs;
  for (const Entry& e : top_) {
    values.push_back(e.value);
    epochs.push_back(e.epoch);
  }
  return {{"values", at::tensor(values, at::kDouble)}, {"epochs", at::tensor(epochs, at::kLong)}};
}

void BestCheckpoint::load_state_dict(const StateDict& state) {
  top_.clear();
  // A checkpoint from before the callback was added holds nothing: the list starts empty.
  if (state.empty()) return;
  const at::Tensor values = state.at("values").to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor epochs = state.at("epochs").to(at::kCPU, at::kLong).contiguous();
  for (int64_t i = 0; i < values.numel(); ++i)
    top_.push_back({values.data_ptr<double>()[i], epochs.data_ptr<int64_t>()[i]});
}

}  // namespace loom::builtin
