// The stage's state providers (host/state/providers.h): what a checkpoint written while a stage runs
// holds besides the run's own (totals, callbacks, sinks), and how a resumed stage reads it back.
#include "loop/trainer.h"

#include <ATen/ATen.h>

#include <deque>

namespace loom::host {

void Trainer::register_stage_state(StageRun& run, std::vector<StateRegistry::Registration>& out) {
  std::deque<StateProvider> providers;  // references stay valid while more are added
  auto provider = [&](std::string key, int64_t version) -> StateProvider& {
    StateProvider& p = providers.emplace_back();
    p.key = std::move(key);
    p.version = version;
    p.phase = StatePhase::Stage;
    return p;
  };
  // Version 2: without the epoch's sums (version 1, format 2, carried rank 0's; from() reads them).
  StateProvider& position = provider("position", 2);
  position.save = [this](EntryWriter& w) { w.write({}, saving_.to_fields()); };
  position.load = [&run](const EntryReader& r) { run.pos = TrainPosition::from(r.fields()); };

  StateProvider& model = provider("model", 1);
  model.save = [&run](EntryWriter& w) { w.write(module_state(run.model)); };
  model.load = [&run](const EntryReader& r) { load_module_state(run.model, r.tensors(), r.file().string()); };

  StateProvider& optimizer = provider("optimizer", 1);
  optimizer.save = [&run](EntryWriter& w) {
    w.write_archive([&](torch::serialize::OutputArchive& a) { run.optimizer.save(a); });
  };
  optimizer.load = [&run](const EntryReader& r) {
    r.read_archive([&](torch::serialize::InputArchive& a) { run.optimizer.load(a); });
  };

  StateProvider& schedule = provider("schedule", 1);
  schedule.save = [this, &run](EntryWriter& w) {
    Fields f;
    f.ints = {{"optimizer_steps", saving_.optimizer_steps}, {"total_steps", run.schedule.total_steps()}};
    w.write({}, f);
  };
  schedule.load = [&run](const EntryReader& r) {
    // The schedule is a function of the step count (in "position"); its length must be this run's.
    const int64_t planned = r.fields().integer("total_steps");
    if (planned != run.schedule.total_steps())
      throw CheckpointError(r.file().string() + ": its learning-rate schedule spans " + std::to_string(planned) +
                            " optimizer steps, this run plans " + std::to_string(run.schedule.total_steps()) +
                            " for stage '" + run.info.stage + "': the data, [loader] or [accumulation] differ from the run "
                            "that wrote it. Resume with the config.resolved.toml it was written with, or start the run again");
  };

  StateProvider& grads = provider("pending_grads", 1);
  grads.gather = [this, &run] { dp_.average_pending_grads(run.model); };  // rank 0's then holds what every rank needs
  grads.save = [&run](EntryWriter& w) {
    StateDict pending;
    auto params = run.model.parameters();
    for (size_t i = 0; i < params.size(); ++i)
      if (params[i].grad().defined()) pending[std::to_string(i)] = params[i].grad().detach().clone();
    w.write(pending);
  };
  grads.load = [&run](const EntryReader& r) {
    auto params = run.model.parameters();
    for (const auto& [k, g] : r.tensors()) {
      const size_t i = std::stoul(k);
      if (i >= params.size())
        throw CheckpointError(r.file().string() + " holds a pending gradient for parameter " + k + " of " +
                              std::to_string(params.size()));
      params[i].mutable_grad() = g.to(params[i].device());
    }
  };

  StateProvider& precision = provider("precision", 1);
  precision.save = [this](EntryWriter& w) { w.write(plugins_.precision.call<&Precision::state_dict>()); };
  precision.load = [this](const EntryReader& r) { plugins_.precision.call<&Precision::load_state_dict>(r.tensors()); };

  // Every rank's running sums of the epoch in progress, one row each (loss, correct, samples, and where the
  // accumulation group began: loss, samples); each rank resumes from its own row, so the epoch's record
  // adds the same numbers in the same order as a run that was never stopped.
  StateProvider& sums = provider("epoch_sums", 1);
  sums.gather = [this] {
    const auto opts = at::TensorOptions().dtype(at::kDouble).device(context_.device());
    at::Tensor rows = at::zeros({dp_.world(), 5}, opts);
    rows[dp_.rank()] = at::tensor({saving_.loss_sum, saving_.correct, static_cast<double>(saving_.samples),
                                   saving_.group_start_loss, static_cast<double>(saving_.group_start_samples)},
                                  at::kDouble)
                           .to(context_.device());
    dp_.sum(rows);  // exact: every other rank adds zeros to a row
    rank_sums_ = rows.cpu();
  };
  sums.save = [this](EntryWriter& w) { w.write({{"by_rank", rank_sums_}}); };
  sums.load = [this, &run](const EntryReader& r) {
    const at::Tensor rows = r.tensor("by_rank").to(at::kDouble).cpu().contiguous();
    TrainPosition& pos = run.pos;
    auto take = [&pos](const at::Tensor& row) {
      const auto v = row.accessor<double, 1>();
      pos.loss_sum = v[0], pos.correct = v[1], pos.samples = static_cast<int64_t>(v[2]);
      pos.group_start_loss = v[3], pos.group_start_samples = static_cast<int64_t>(v[4]);
    };
    if (rows.dim() != 2 || rows.size(1) != 5)
      throw CheckpointError(r.file().string() + ": entry 'epoch_sums' has shape " + c10::str(rows.sizes()) +
                            " where [ranks, 5] was written; the checkpoint is damaged. Resume from a copy, or start the run again");
    if (rows.size(0) == dp_.world()) {
      take(rows[dp_.rank()]);
    } else {  // another number of ranks: rank 0 carries the epoch's sums so far, the others start from zero
      take(dp_.primary() ? rows.sum(0) : at::zeros({5}, at::kDouble));
      pos.group_start_loss = pos.loss_sum, pos.group_start_samples = pos.samples;
    }
  };
  // A format-2 checkpoint kept rank 0's sums in "position" (loaded above); the other ranks' were lost.
  sums.absent = [this, &run] {
    if (dp_.primary()) return;
    run.pos.loss_sum = run.pos.correct = run.pos.group_start_loss = 0.0;
    run.pos.samples = run.pos.group_start_samples = 0;
  };

  StateProvider& cpu_rng = provider("rng/cpu", 1);
  cpu_rng.save = [](EntryWriter& w) { w.write({{"state", rng_state(c10::Device(c10::kCPU))}}); };
  cpu_rng.load = [](const EntryReader& r) { set_rng_state(c10::Device(c10::kCPU), r.tensor("state")); };
  if (context_.device().is_cuda()) {
    StateProvider& cuda_rng = provider("rng/cuda", 1);
    cuda_rng.save = [this](EntryWriter& w) { w.write({{"state", rng_state(context_.device())}}); };
    cuda_rng.load = [this](const EntryReader& r) { set_rng_state(context_.device(), r.tensor("state")); };
    cuda_rng.absent = [] {};  // a checkpoint of a CPU run: the device's generator keeps its seeded state
  }
  for (StateProvider& p : providers) out.push_back(state_.add(std::move(p)));
}

}  // namespace loom::host
