// The one table of plugin kinds: for each kind, its TOML table, the plugin a missing table means, whether
// the config holds one ([name]) or many ([[name]], run in file order), and the order the host creates them
// in. Adding a kind touches sdk/include/loom/kinds.h and kinds_table.cpp, nothing else.
#pragma once

#include <loom/kinds.h>

#include <string>
#include <vector>

namespace loom::host {

enum class Cardinality { One, Many };

struct KindInfo {
  Kind kind;
  std::string table;    ///< TOML table name: [dataset], [[callback]]
  std::string neutral;  ///< One: the plugin a missing table means ("" = the table is required)
  Cardinality cardinality = Cardinality::One;
  /// Many: a plugin always present, first, even when the config does not list it (metric_sink: jsonl).
  std::string always;
};

/// Every kind, in creation order (the communicator first: it decides the device and who writes; the
/// dataset before the cache that wraps it and the model that reads its spec; the driver, callbacks and
/// sinks last).
const std::vector<KindInfo>& kind_table();
const KindInfo& kind_info(Kind kind);

}  // namespace loom::host
