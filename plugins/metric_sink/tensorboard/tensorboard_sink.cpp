#include "tensorboard_sink.h"

#include "event_writer.h"
#include "metric_sink/common/sink_state.h"

#include <unistd.h>

#include <chrono>
#include <climits>
#include <stdexcept>

namespace loom::builtin {

namespace {

std::string hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  std::string host(name);
  for (char& c : host)
    if (c == '/') c = '_';
  return host;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

FeatureInfo TensorBoardSink::info() {
  return {.name = "tensorboard",
          .version = "1.0.0",
          .summary = "TensorBoard scalars (an event file under the run directory), tags grouped by stage",
          .params = {ParamSpec::string("dir", "tensorboard").doc("directory of the event file, relative to the run directory"),
                     ParamSpec::integer("every_n_steps", 50)
                         .at_least(0)
                         .doc("also log train_loss, lr, grad_norm every N optimizer steps (0: epochs only)")}};
}

TensorBoardSink::TensorBoardSink(const CreateContext& ctx) : every_n_steps_(ctx.params.integer("every_n_steps")) {
  const std::filesystem::path dir = ctx.params.str("dir");
  if (dir.empty() || dir.is_absolute())
    throw std::invalid_argument("tensorboard: dir must be a relative path inside the run directory, got '" +
                                dir.string() + "'");
  dir_ = ctx.run.run_dir() / dir;
}

void TensorBoardSink::open() {
  if (file_.is_open()) return;
  if (file_name_.empty()) {
    // TensorBoard finds files by "tfevents" in the name; time and host keep two runs' files apart.
    const auto seconds = static_cast<int64_t>(now_seconds());
    file_name_ = "events.out.tfevents." + std::to_string(seconds) + "." + hostname() + ".loom";
    file_.set_path(dir_ / file_name_);
  }
  file_.open();
  // Version 2 also tells readers to detect restarts by SessionLog events, not by an event's step going below
  // an earlier event's: this file interleaves epoch, optimizer-step and round counters, so steps go back
  // all the time.
  if (file_.size() == 0)
    file_.append(tfevents::frame_record(tfevents::file_version_event(now_seconds(), "brain.Event:2")));
}

void TensorBoardSink::write(const MetricRecord& record) {
  if (record.kind == RecordKind::Step && (every_n_steps_ == 0 || record.step % every_n_steps_ != 0)) return;
  std::string prefix = record.stage + "/";
  int64_t step = record.epoch;
  if (record.kind == RecordKind::Step) {
    prefix += "step/";
    step = record.step;
  } else if (record.kind == RecordKind::Event) {
    // Events of one type (a self-training driver's "round" records) form one curve over the rounds:
    // "round/test_accuracy" at step = round, whatever stage logged them.
    step = record.round;
    if (const auto type = record.values.find("type"); type != record.values.end())
      if (const auto* name = std::get_if<std::string>(&type->second)) prefix = *name + "/";
  }
  std::vector<tfevents::Scalar> scalars;
  for (const auto& [key, value] : record.values)
    if (const auto number = as_number(value)) scalars.push_back({prefix + key, static_cast<float>(*number)});
  if (scalars.empty()) return;
  open();
  file_.append(tfevents::frame_record(tfevents::scalars_event(record.wall_time, step, scalars)));
}

void TensorBoardSink::flush() {
  open();
  file_.sync();
}

StateDict TensorBoardSink::state_dict() const {
  return {{"file", sinks::bytes_tensor(file_name_)}, {"bytes", sinks::int_tensor(file_.committed())}};
}

void TensorBoardSink::load_state_dict(const StateDict& state) {
  const auto name = sinks::state_bytes(state, "file", "tensorboard");
  if (!name || name->empty()) return;  // nothing was committed: a new file, as for a fresh run
  if (name->find('/') != std::string::npos)
    throw std::runtime_error("metric sink 'tensorboard': state 'file' is not a file name: '" + *name + "'");
  file_name_ = *name;
  file_.set_path(dir_ / file_name_);
  file_.truncate_to(sinks::state_int(state, "bytes", "tensorboard").value_or(0));
}

}  // namespace loom::builtin
