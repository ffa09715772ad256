// The checkpoint's contents as a registry: every stateful part of a run registers a StateProvider (a
// stable key, the version of its entry's layout, save and load), and writing a checkpoint and resuming
// iterate the registry — nothing else enumerates what a checkpoint holds.
//
// Keys (docs/architecture.md, "State registry"): position, model, optimizer, schedule, precision,
// accumulation, rng/cpu, rng/cuda, pending_grads, epoch_sums, run (totals and summary entries),
// callback/<name> (callback/<name>#2 for the second of a name, callback/<id> for a table with id = "…"),
// metric_sink/<name> (likewise).
//
// Order: gather() runs on every rank (collectives: the pending gradients' average, the epoch sums'
// all-reduce), then save() writes every provider in registration order (rank 0 only). A provider that must run something first does it in its own
// save (a metric sink flushes before its state_dict: its state must describe what is durably written).
// Resuming loads one phase at a time, each in registration order:
//   Run    at resume start, before anything is written: callbacks, metric sinks (they drop what they wrote
//          after the checkpoint), run totals and summary entries;
//   Plan   when the checkpointed stage starts, before its planner probes: accumulation (a micro-batch size it
//          probed must not be probed again);
//   Stage  once the stage's model, optimizer and schedule exist: position, model, optimizer, schedule,
//          pending gradients, precision, epoch sums (after position), RNGs (last).
//
// Format 3 is format 2 with stable keys and "epoch_sums" (one row per rank). A format-2 checkpoint ("callback/<i>:<name>", "metric_sink/<i>:
// <name>", the epoch's sums inside "position") is read through StateSource, which maps its positional keys
// to the stable ones (the k-th entry of a name becomes <name>, <name>#2, …).
#pragma once

#include "state/checkpoint.h"

#include <loom/params.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace loom::host {

enum class StatePhase { Run, Plan, Stage };

/// One checkpoint entry being written: tensors and plain fields, or an archive (the optimizer's).
class EntryWriter {
 public:
  EntryWriter(CheckpointWriter& writer, std::string key, int64_t version)
      : writer_(writer), key_(std::move(key)), version_(version) {}
  void write(const StateDict& tensors, const Fields& fields = {});
  void write_archive(const std::function<void(torch::serialize::OutputArchive&)>& save);
  bool written() const { return written_; }

 private:
  void once();
  CheckpointWriter& writer_;
  std::string key_;
  int64_t version_;
  bool written_ = false;
};

/// One checkpoint entry being read back; version() is the layout it was written with.
class EntryReader {
 public:
  EntryReader(const CheckpointReader& reader, std::string stored_key, std::string key)
      : reader_(reader), stored_(std::move(stored_key)), key_(std::move(key)) {}
  int64_t version() const { return reader_.version(stored_); }
  StateDict tensors() const { return reader_.tensors(stored_); }
  Fields fields() const { return reader_.fields(stored_); }
  /// One tensor of the entry; CheckpointError naming the file and the entry when it has none.
  at::Tensor tensor(const std::string& name) const;
  void read_archive(const std::function<void(torch::serialize::InputArchive&)>& load) const {
    reader_.read_archive(stored_, load);
  }
  const std::string& key() const { return key_; }
  const std::filesystem::path& file() const { return reader_.file(); }
  int64_t format() const { return reader_.format(); }

 private:
  const CheckpointReader& reader_;
  std::string stored_, key_;
};

/// A checkpoint as the registry reads it: entries by their stable keys (a format-2 checkpoint's positional
/// keys mapped to them).
class StateSource {
 public:
  explicit StateSource(const CheckpointReader& reader);
  bool has(const std::string& key) const { return stored_.count(key) != 0; }
  EntryReader entry(const std::string& key) const;
  const CheckpointReader& reader() const { return reader_; }

 private:
  const CheckpointReader& reader_;
  std::map<std::string, std::string> stored_;  ///< stable key → the key in the file
};

struct StateProvider {
  std::string key;
  int64_t version = 1;  ///< the layout save() writes; load() is given the entry's own (older ones it reads too)
  StatePhase phase = StatePhase::Stage;
  std::string owner;  ///< for messages: "callback plugin 'ema' (libloom_callback_ema.so)"; "" for the host's own
  std::function<void(EntryWriter&)> save;
  std::function<void(const EntryReader&)> load;
  /// Every rank, before rank 0 writes (collectives go here). Optional.
  std::function<void()> gather;
  /// On resume, when the checkpoint has no entry for `key` (a checkpoint written before the provider
  /// existed). Unset: the resume is refused, naming the entry.
  std::function<void()> absent;
};

class StateRegistry {
 public:
  /// Removes its provider when destroyed (a stage's providers live as long as the stage).
  class Registration {
   public:
    Registration() = default;
    Registration(StateRegistry* registry, std::string key) : registry_(registry), key_(std::move(key)) {}
    Registration(Registration&& other) noexcept : registry_(other.registry_), key_(std::move(other.key_)) {
      other.registry_ = nullptr;
    }
    Registration& operator=(Registration&& other) noexcept;
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    ~Registration();

   private:
    StateRegistry* registry_ = nullptr;
    std::string key_;
  };

  /// Registers `provider`; a key already registered is refused (std::invalid_argument naming both owners).
  [[nodiscard]] Registration add(StateProvider provider);

  /// Every rank: the providers' gather steps, in registration order.
  void gather() const;
  /// Rank 0: one entry per provider, in registration order.
  void save(CheckpointWriter& writer) const;
  /// Loads the providers of `phase` from `source`, in registration order. CheckpointError when an entry
  /// is missing (and the provider has no `absent`) or newer than the provider reads.
  void load(const StateSource& source, StatePhase phase) const;

  std::vector<std::string> keys() const;

 private:
  void remove(const std::string& key);
  std::vector<StateProvider> providers_;
};

/// The stable key of the k-th (0-based) plugin named `name` of a many-kind ("callback", "metric_sink"):
/// an explicit id wins; otherwise "<kind>/<name>" for the first, "<kind>/<name>#<k+1>" after it.
std::string stable_key(const std::string& kind, const std::string& name, int occurrence, const std::string& id);

/// What a many-kind's dispatcher (callbacks, metric sinks) keeps per plugin to key its checkpoint state.
struct StateKey {
  std::string plugin;         ///< the plugin's name
  std::string owner;          ///< "callback plugin 'ema' (libloom_callback_ema.so)", for messages
  std::string key;            ///< stable_key()
  std::string table, params;  ///< where it was configured ("callback[1]") and its parameters (params_text)
  bool by_order = false;      ///< no id, and another table of its plugin has none either
  bool has_id = false;
};

/// The StateKey of a plugin added after `earlier` (its kind's plugins so far, in file order), and the
/// earlier ones of the same name marked by_order when neither has an id. Refuses a key another table
/// already has (an explicit id equal to a name-derived key).
StateKey assign_state_key(const std::vector<StateKey*>& earlier, const std::string& kind, std::string plugin,
                          std::string owner, const std::string& id, std::string table, std::string params);

/// A table's parameters as one line ("decay = 0.99, warmup = true"), recorded beside a plugin's state.
std::string params_text(const Params& params);

/// For a plugin told apart from others of its name by its order only: refuses `entry` (CheckpointError)
/// when it records other table parameters than `params`, i.e. the tables were reordered or changed.
/// `table`: where the plugin is configured now ("callback[2]").
void check_same_table(const EntryReader& entry, const std::string& params, const std::string& table, const std::string& plugin);

}  // namespace loom::host
