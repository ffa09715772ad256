#include "plugins/kinds_table.h"

#include <stdexcept>

namespace loom::host {

const std::vector<KindInfo>& kind_table() {
  static const std::vector<KindInfo> table = {
      {Kind::Communicator, "communicator", "none"},
      {Kind::Dataset, "dataset", ""},
      {Kind::Cache, "cache", "none"},
      {Kind::Model, "model", ""},
      {Kind::Augmentation, "augmentation", "", Cardinality::Many},
      {Kind::Precision, "precision", "fp32"},
      {Kind::Accumulation, "accumulation", "none"},
      {Kind::SelfTraining, "self_training", "none"},
      {Kind::Callback, "callback", "", Cardinality::Many},
      {Kind::MetricSink, "metric_sink", "", Cardinality::Many, "jsonl"},
  };
  return table;
}

const KindInfo& kind_info(Kind kind) {
  for (const KindInfo& k : kind_table())
    if (k.kind == kind) return k;
  throw std::logic_error("kind " + std::string(to_string(kind)) + " is missing from host/plugins/kinds_table.cpp");
}

}  // namespace loom::host
