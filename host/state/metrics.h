// JSON helpers for what the host writes itself: summary.json, and metric values as JSON. (metrics.jsonl
// is the jsonl metric-sink plugin's: plugins/metric_sink/jsonl.)
#pragma once

#include <loom/metrics.h>

#include <nlohmann/json.hpp>

#include <filesystem>

namespace loom::host {

/// A metric value as JSON (std::monostate as null).
nlohmann::json to_json(const MetricValue& value);

/// Writes JSON atomically (temp + fsync + rename); the temp file is removed when writing fails.
void write_json_file(const std::filesystem::path& file, const nlohmann::json& value);

}  // namespace loom::host
