// metrics.jsonl (one JSON object per line, flushed per record) and summary.json.
#pragma once

#include <loom/self_training.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace loom::host {

class MetricsWriter {
 public:
  explicit MetricsWriter(const std::filesystem::path& file);  // appends (a resumed run continues the file)
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
  std::filesystem::path file_;
};

/// A driver's metric value as JSON.
nlohmann::json to_json(const MetricValue& value);

/// Writes JSON atomically (temp + fsync + rename).
void write_json_file(const std::filesystem::path& file, const nlohmann::json& value);

}  // namespace loom::host
