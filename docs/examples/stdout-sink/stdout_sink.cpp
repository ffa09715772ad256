#include "stdout_sink.h"

#include <ATen/ops/scalar_tensor.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <variant>

namespace example {

namespace fs = std::filesystem;

namespace {

std::string format(const loom::MetricValue& value) {
  if (const auto* d = std::get_if<double>(&value)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", *d);
    return buf;
  }
  if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  return "n/a";  // std::monostate: no value, e.g. val_loss without a validation split
}

}  // namespace

loom::FeatureInfo StdoutSink::info() {
  return {.name = "stdout-sink",
          .version = "1.0.0",
          .summary = "one line of text per epoch record in <run_dir>/<file>; a third-party metric sink example",
          .params = {loom::ParamSpec::string("file", "epochs.txt").doc("file name inside the run directory")}};
}

StdoutSink::StdoutSink(const loom::CreateContext& ctx) {
  // Check the param here, so a bad value fails `loom check --deep` and the run before anything is
  // written. But open nothing: the run directory is created only after every plugin was created.
  const fs::path file = ctx.params.str("file");
  if (file.empty() || file.is_absolute() || file.lexically_normal().string().rfind("..", 0) == 0)
    throw std::invalid_argument("file = \"" + file.string() + "\" must be a relative path inside the run directory");
  file_.set_path(ctx.run.run_dir() / file);
}

void StdoutSink::open() {
  if (file_.is_open()) return;
  // What the previous process wrote after its last checkpoint is written again by this one: cut it off
  // (a new run has committed nothing, so a stale file is emptied). truncate_to() refuses a file that is
  // missing or shorter than the checkpoint says, naming it.
  file_.truncate_to(committed_);
  file_.open();  // creates the file and its directory
}

void StdoutSink::write(const loom::MetricRecord& record) {
  if (record.kind != loom::RecordKind::Epoch) return;  // step records and events are not for this file
  open();
  std::string line = "[" + record.stage + "] epoch " + std::to_string(record.epoch) + " step " + std::to_string(record.step) + ":";
  for (const auto& [key, value] : record.values) line += " " + key + "=" + format(value);
  line += "\n";
  file_.append(line);  // all or nothing; a failure throws loom::io::WriteError naming the file and the error
}

void StdoutSink::flush() {
  // Also on a resumed run that has not written yet: opening truncates what the checkpoint did not commit.
  open();
  file_.sync();  // fsync: what the checkpoint records is on disk
  committed_ = file_.committed();
}

// Called right after flush(), for the checkpoint: how much of the file that checkpoint covers.
loom::StateDict StdoutSink::state_dict() const {
  return {{"committed_bytes", at::scalar_tensor(committed_, at::TensorOptions().dtype(at::kLong))}};
}

// Called on --resume, before the first write() or flush().
void StdoutSink::load_state_dict(const loom::StateDict& state) {
  const auto it = state.find("committed_bytes");
  if (it == state.end()) throw std::invalid_argument("stdout-sink: the checkpoint's state lacks committed_bytes");
  committed_ = it->second.item<int64_t>();  // open() cuts the file back to this
}

}  // namespace example
