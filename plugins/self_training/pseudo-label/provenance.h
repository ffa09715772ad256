// What a pseudo-label run leaves in its run directory, crash-safe: per round a directory of .npy arrays
// (which samples got which labels, how confidently) and a JSON naming the teacher that produced them; and
// one JSON listing the rounds whose metrics are already in metrics.jsonl, so a resumed run, which
// replays finished rounds, never reports them twice.
#pragma once

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace loom::pseudo_label {

enum class Written {
  Fresh,      ///< the directory did not exist
  Identical,  ///< it existed (a replayed round) with exactly these bytes; left as it was
  Replaced,   ///< it existed with other bytes (a non-deterministic replay); now holds the new ones
};

/// Writes `dir` holding one `<name>.npy` per entry of `arrays`, all or nothing: the files go to a
/// temporary directory beside it, which is renamed into place (and the parent directory fsync'ed), so a
/// crash leaves either no `dir` or a complete one.
Written write_array_dir(const std::filesystem::path& dir, const std::vector<std::pair<std::string, at::Tensor>>& arrays);

/// Writes JSON atomically (temp file, fsync, rename, fsync of the directory), indented for people.
void write_json(const std::filesystem::path& file, const nlohmann::json& value);

/// `<run_dir>/pseudo_label_rounds.json`: {"rounds": [{"round": 0, ...}, ...]}, one entry per finished
/// round in order, added after that round's metrics were logged.
class RoundLog {
 public:
  /// Reads the file when it exists (a resumed run); throws naming the file when it is not such a list.
  explicit RoundLog(std::filesystem::path file);
  bool contains(int64_t round) const;
  /// Appends (or, for a replayed round, replaces) the entry for entry["round"] and rewrites the file.
  void record(const nlohmann::json& entry);

 private:
  std::filesystem::path file_;
  nlohmann::json rounds_ = nlohmann::json::array();
};

}  // namespace loom::pseudo_label
