// The plugin kinds. Each SDK interface names its kind as `static constexpr Kind kKind`.
//
// Adding a kind touches this list and the host's table of kinds (host/plugins/kinds_table.cpp: TOML table,
// neutral plugin, one-or-many, creation order), nothing else.
#pragma once

#include <array>
#include <string_view>

namespace loom {

enum class Kind {
  Dataset,
  Cache,
  Model,
  Precision,
  Accumulation,
  SelfTraining,
  Communicator,
  Callback,    ///< since SDK 0.3: hooks around optimizer steps, validation and stages ([[callback]])
  MetricSink,  ///< since SDK 0.3: receives every metric record of the run ([[metric_sink]])
  Augmentation,  ///< since SDK 0.4: ops of named per-batch training pipelines ([[augmentation]])
};

inline constexpr std::array<Kind, 10> kAllKinds = {Kind::Dataset,      Kind::Cache,        Kind::Model,
                                                   Kind::Precision,    Kind::Accumulation, Kind::SelfTraining,
                                                   Kind::Communicator, Kind::Callback,     Kind::MetricSink,
                                                   Kind::Augmentation};

/// The kind's name as it appears in TOML table names and `loom plugins`.
inline constexpr std::string_view to_string(Kind k) {
  switch (k) {
    case Kind::Dataset: return "dataset";
    case Kind::Cache: return "cache";
    case Kind::Model: return "model";
    case Kind::Precision: return "precision";
    case Kind::Accumulation: return "accumulation";
    case Kind::SelfTraining: return "self_training";
    case Kind::Communicator: return "communicator";
    case Kind::Callback: return "callback";
    case Kind::MetricSink: return "metric_sink";
    case Kind::Augmentation: return "augmentation";
  }
  return "?";
}

}  // namespace loom
