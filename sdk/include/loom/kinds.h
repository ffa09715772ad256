// The plugin kinds. Each SDK interface names its kind as `static constexpr Kind kKind`.
#pragma once

#include <array>
#include <string_view>

namespace loom {

enum class Kind { Dataset, Cache, Model, Precision, Accumulation, SelfTraining, Communicator };

inline constexpr std::array<Kind, 7> kAllKinds = {Kind::Dataset,      Kind::Cache,        Kind::Model,
                                                  Kind::Precision,    Kind::Accumulation, Kind::SelfTraining,
                                                  Kind::Communicator};

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
  }
  return "?";
}

}  // namespace loom
