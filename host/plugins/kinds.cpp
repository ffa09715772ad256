#include "plugins/kinds.h"

#include <loom/plugin.h>  // every SDK interface, for its KindTraits

#include <algorithm>
#include <stdexcept>

namespace loom::host {

namespace {

template <class Interface>
KindInfo info_of() {
  using T = KindTraits<Interface>;
  static_assert(T::cardinality == Cardinality::One || T::neutral.empty(),
                "a kind of many tables has no neutral plugin (a missing [[table]] means none)");
  return {T::kind, std::string(to_string(T::kind)), std::string(T::neutral), T::cardinality, std::string(T::always),
          T::creation, T::order};
}

std::vector<KindInfo> build_table() {
  std::vector<KindInfo> table = {
#define LOOM_KIND_INFO(Interface, toml_table) info_of<loom::Interface>(),
      LOOM_KINDS(LOOM_KIND_INFO)
#undef LOOM_KIND_INFO
  };
  std::stable_sort(table.begin(), table.end(), [](const KindInfo& a, const KindInfo& b) { return a.order < b.order; });
  return table;
}

}  // namespace

const std::vector<KindInfo>& kind_table() {
  static const std::vector<KindInfo> table = build_table();
  return table;
}

const KindInfo& kind_info(Kind kind) {
  for (const KindInfo& k : kind_table())
    if (k.kind == kind) return k;
  throw std::logic_error("kind " + std::string(to_string(kind)) + " has no KindTraits");
}

}  // namespace loom::host
