// The plugin kinds, as data. Since SDK 0.6 a kind is two things:
//   1. one line in LOOM_KINDS below: the enum value, which is also the name of its SDK interface class;
//   2. a KindTraits<Interface> specialisation beside that interface, in the kind's own header (the TOML
//      table, one-or-many, the neutral plugin, when the host creates it).
// The host builds its table of kinds, its config checks, `loom plugins` and plugin creation from these,
// and calls every plugin through one generic guarded slot; adding a kind touches this list, the kind's
// header and <loom/plugin.h>'s include list (docs/architecture.md, "Adding a kind").
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace loom {

/// X(Interface, toml_table): every kind, in the order `loom plugins` lists them.
#define LOOM_KINDS(X)              \
  X(Dataset, dataset)              \
  X(Cache, cache)                  \
  X(Model, model)                  \
  X(Precision, precision)          \
  X(Accumulation, accumulation)    \
  X(SelfTraining, self_training)   \
  X(Communicator, communicator)    \
  X(Callback, callback)            \
  X(MetricSink, metric_sink)       \
  X(Augmentation, augmentation)

enum class Kind {
#define LOOM_KIND_ENUM(Interface, table) Interface,
  LOOM_KINDS(LOOM_KIND_ENUM)
#undef LOOM_KIND_ENUM
};

inline constexpr std::array kAllKinds = {
#define LOOM_KIND_VALUE(Interface, table) Kind::Interface,
    LOOM_KINDS(LOOM_KIND_VALUE)
#undef LOOM_KIND_VALUE
};

/// The kind's name as it appears in TOML table names and `loom plugins`.
inline constexpr std::string_view to_string(Kind k) {
  switch (k) {
#define LOOM_KIND_NAME(Interface, table) \
  case Kind::Interface: return #table;
    LOOM_KINDS(LOOM_KIND_NAME)
#undef LOOM_KIND_NAME
  }
  return "?";
}

/// How many tables of a kind a config holds: [name] (one) or [[name]] (zero or more, used in file order).
enum class Cardinality { One, Many };

/// When the host creates a kind's plugins.
enum class Creation {
  AtStart,   ///< once, before anything is written, in `order` (a failure leaves nothing on disk)
  OnDemand,  ///< by the host when a stage asks for one (models: TrainerServices::create_model)
};

/// What every KindTraits specialisation holds (the host reads these fields, and only these):
///
///   template <> struct KindTraits<Precision> : KindTraitsBase {
///     static constexpr Kind kind = Kind::Precision;
///     static constexpr Cardinality cardinality = Cardinality::One;
///     static constexpr std::string_view neutral = "fp32";   // what a missing table means ("": required)
///     static constexpr int order = 50;                       // creation order among AtStart kinds
///   };
///
/// `always` (Many kinds): a plugin present first even when the config lists none (metric_sink: jsonl).
template <class Interface>
struct KindTraits;

struct KindTraitsBase {
  static constexpr Cardinality cardinality = Cardinality::One;
  static constexpr std::string_view neutral = "";
  static constexpr std::string_view always = "";
  static constexpr Creation creation = Creation::AtStart;
  static constexpr int order = 100;
};

}  // namespace loom
