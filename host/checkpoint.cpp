#include "checkpoint.h"

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace loom::host {

namespace fs = std::filesystem;

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path.string() + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw std::runtime_error("fsync of " + path.string() + " failed: " + std::strerror(err));
}

static void atomic_save(const fs::path& file, torch::serialize::OutputArchive& archive) {
  const fs::path tmp = file.string() + ".tmp";
  archive.save_to(tmp.string());
  fsync_path(tmp);
  fs::rename(tmp, file);
  fsync_path(file.parent_path().empty() ? fs::path(".") : file.parent_path());
}

static void write_state(torch::serialize::OutputArchive& archive, const std::string& prefix, const StateDict& state) {
  torch::serialize::OutputArchive sub(archive.compilation_unit());
  for (const auto& [k, v] : state) sub.write(k, v);
  archive.write(prefix, sub);
}

static StateDict read_state(torch::serialize::InputArchive& archive, const std::string& prefix) {
  StateDict state;
  torch::serialize::InputArchive sub;
  if (!archive.try_read(prefix, sub)) return state;
  for (const std::string& key : sub.keys()) {
    at::Tensor t;
    sub.read(key, t);
    state[key] = t;
  }
  return state;
}

void write_checkpoint(const fs::path& file, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                      const CheckpointState& s) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive(archive.compilation_unit());
  model.save(model_archive);
  archive.write("model", model_archive);
  torch::serialize::OutputArchive optimizer_archive(archive.compilation_unit());
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);

  const TrainPosition& p = s.position;
  archive.write("position/stage", c10::IValue(p.stage));
  archive.write("position/ints", c10::IValue(std::vector<int64_t>{p.round, p.epoch, p.next_group, p.next_micro,
                                                                  p.optimizer_steps, p.stage_done ? 1 : 0, p.samples}));
  archive.write("position/floats", c10::IValue(std::vector<double>{p.loss_sum, p.correct, p.train_seconds}));
  archive.write("rng/cpu", s.cpu_rng);
  write_state(archive, "precision", s.precision);
  write_state(archive, "accumulation", s.accumulation);
  StateDict grads;
  for (size_t i = 0; i < s.pending_grads.size(); ++i)
    if (s.pending_grads[i].defined()) grads[std::to_string(i)] = s.pending_grads[i];
  if (!s.pending_grads.empty()) {
    archive.write("pending_grads/count", c10::IValue(static_cast<int64_t>(s.pending_grads.size())));
    write_state(archive, "pending_grads", grads);
  }
  atomic_save(file, archive);
}

CheckpointState read_checkpoint_state(const fs::path& file) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  CheckpointState s;
  c10::IValue stage, ints, floats;
  archive.read("position/stage", stage);
  archive.read("position/ints", ints);
  archive.read("position/floats", floats);
  s.position.stage = stage.toStringRef();
  const auto i = ints.toIntVector();
  const auto f = floats.toDoubleVector();
  if (i.size() != 7 || f.size() != 3) throw std::runtime_error(file.string() + ": checkpoint position record is malformed");
  s.position.round = i[0];
  s.position.epoch = i[1];
  s.position.next_group = i[2];
  s.position.next_micro = i[3];
  s.position.optimizer_steps = i[4];
  s.position.stage_done = i[5] != 0;
  s.position.samples = i[6];
  s.position.loss_sum = f[0];
  s.position.correct = f[1];
  s.position.train_seconds = f[2];
  archive.read("rng/cpu", s.cpu_rng);
  s.precision = read_state(archive, "precision");
  s.accumulation = read_state(archive, "accumulation");
  c10::IValue count;
  if (archive.try_read("pending_grads/count", count)) {
    const StateDict grads = read_state(archive, "pending_grads");
    s.pending_grads.resize(static_cast<size_t>(count.toInt()));
    for (const auto& [k, v] : grads) s.pending_grads.at(std::stoul(k)) = v;
  }
  return s;
}

void restore_checkpoint(const fs::path& file, torch::nn::Module& model, torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  torch::serialize::InputArchive model_archive, optimizer_archive;
  archive.read("model", model_archive);
  model.load(model_archive);
  archive.read("optimizer", optimizer_archive);
  optimizer.load(optimizer_archive);
}

void read_model(const fs::path& file, torch::nn::Module& model) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  model.load(archive);
}

void write_model(const fs::path& file, torch::nn::Module& model) {
  torch::serialize::OutputArchive archive;
  model.save(archive);
  atomic_save(file, archive);
}

}  // namespace loom::host
