// Checkpoint format 3: named, versioned entries, one per state provider (host/state/providers.h: model,
// optimizer, schedule, precision, accumulation, position, the epoch's sums, RNGs, pending gradients, each
// callback and metric sink under its own stable key). A checkpoint is written atomically (temp file, fsync, rename, fsync of the directory), so a crash
// leaves either the previous checkpoint or the new one; it is read once (CheckpointReader) and refused
// whole when its format is neither this one nor format 2 (whose keys StateSource maps to today's).
#pragma once

#include <loom/log.h>
#include <loom/state.h>

#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::host {

/// The format this Loom writes. Format 2 (positional callback and sink keys) is still read, through
/// StateSource (host/state/providers.h); format 1 was Loom 0.1–0.2's positional layout.
inline constexpr int64_t kCheckpointFormat = 3;
inline constexpr int64_t kOldestReadableCheckpointFormat = 2;

/// A checkpoint (or weights file) that cannot be used; the message names the file and what to do.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Plain values of an entry: named scalars and strings (the position, schedule counters).
struct Fields {
  std::map<std::string, int64_t> ints;
  std::map<std::string, double> reals;
  std::map<std::string, std::string> strings;
  int64_t integer(const std::string& k) const;
  double real(const std::string& k) const;
  const std::string& str(const std::string& k) const;
};

class CheckpointWriter {
 public:
  CheckpointWriter();
  /// Each entry carries its own version, so one provider can change its layout without the others.
  void add(const std::string& key, int64_t version, const StateDict& tensors, const Fields& fields = {});
  void add_archive(const std::string& key, int64_t version,
                   const std::function<void(torch::serialize::OutputArchive&)>& save);
  /// Writes `file` atomically with its checksum file (<stem>.sha256); the checkpoint it replaces stays as
  /// <stem>.prev.pt with <stem>.prev.sha256. A failure (disk full) removes the new file's temporary and
  /// leaves the previous checkpoint the latest.
  void commit(const std::filesystem::path& file);

 private:
  torch::serialize::OutputArchive root_;
  std::vector<std::string> keys_;
};

class CheckpointReader {
 public:
  /// Reads `file` once; throws CheckpointError when it is unreadable or of a format version it cannot read.
  explicit CheckpointReader(const std::filesystem::path& file);
  bool has(const std::string& key) const;
  int64_t version(const std::string& key) const;
  StateDict tensors(const std::string& key) const;
  Fields fields(const std::string& key) const;
  void read_archive(const std::string& key, const std::function<void(torch::serialize::InputArchive&)>& load) const;
  const std::filesystem::path& file() const { return file_; }
  const std::vector<std::string>& keys() const { return keys_; }
  /// The format the file was written in (kOldestReadableCheckpointFormat … kCheckpointFormat).
  int64_t format() const { return format_; }

 private:
  torch::serialize::InputArchive entry(const std::string& key) const;
  std::filesystem::path file_;
  mutable torch::serialize::InputArchive root_;
  std::vector<std::string> keys_;
  int64_t format_ = 0;
};

/// The newest checkpoint of `file`'s two generations whose checksum verifies, read once; falls back to the
/// previous generation with a warning saying what is replayed. CheckpointError when neither is usable
/// (or the run never wrote one), saying how to start over.
std::unique_ptr<CheckpointReader> open_checkpoint(const std::filesystem::path& file, Logger& log);

/// Model weights (parameters and buffers, by name) as a state dict, and back (shapes must match).
StateDict module_state(torch::nn::Module& module);
void load_module_state(torch::nn::Module& module, const StateDict& state, const std::string& what);

/// Saves model weights alone (model.pt, stage files): atomically, like the checkpoint.
void write_model(const std::filesystem::path& file, torch::nn::Module& model);
/// Loads weights written by write_model() into `model` (same architecture); CheckpointError otherwise.
void read_model(const std::filesystem::path& file, torch::nn::Module& model);


}  // namespace loom::host
