// The host's table of plugin kinds, built from the SDK's kinds list (LOOM_KINDS) and each kind's
// KindTraits (sdk/include/loom/<kind>.h): its TOML table, the plugin a missing table means, whether the
// config holds one ([name]) or many ([[name]], used in file order), and when the host creates it. Nothing
// here is written per kind: adding a kind adds no line to the host.
#pragma once

#include <loom/kinds.h>

#include <string>
#include <vector>

namespace loom::host {

using loom::Cardinality;
using loom::Creation;

struct KindInfo {
  Kind kind;
  std::string table;    ///< TOML table name: [dataset], [[callback]]
  std::string neutral;  ///< One: the plugin a missing table means ("" = the table is required)
  Cardinality cardinality = Cardinality::One;
  /// Many: a plugin always present, first, even when the config does not list it (metric_sink: jsonl).
  std::string always;
  Creation creation = Creation::AtStart;
  int order = 0;  ///< creation order (KindTraits::order)
};

/// Every kind, in creation order (the communicator first: it decides the device and who writes; the
/// dataset before the cache that wraps it and the model that reads its spec; the driver, callbacks and
/// sinks last).
const std::vector<KindInfo>& kind_table();
const KindInfo& kind_info(Kind kind);

}  // namespace loom::host
