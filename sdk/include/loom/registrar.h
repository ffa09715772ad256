// Registration: a plugin library's entry point receives a Registrar and adds one entry per feature,
// explicitly — no static-initialiser registries.
#pragma once

#include <loom/context.h>
#include <loom/kinds.h>
#include <loom/params.h>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace loom {

/// What `loom plugins` shows about a feature, and what the host validates its table against.
struct FeatureInfo {
  Kind kind = Kind::Dataset;
  std::string name;      ///< kebab-case registry name, unique per kind: "fashion-mnist", "amp-fp16"
  std::string version;   ///< the feature's version, e.g. "1.0.0" (datasets: part of the fingerprint)
  std::string summary;   ///< one line
  Schema params;
};

/// Creates an object of the feature's kind (type-erased; the host casts by kind).
using AnyFactory = std::function<std::shared_ptr<void>(const CreateContext&)>;

class Registrar {
 public:
  virtual ~Registrar() = default;
  virtual void add(FeatureInfo info, AnyFactory factory) = 0;

  /// Typed registration: `r.add<loom::Dataset>({.name = "x", ...}, [](const CreateContext& c) {...})`.
  /// `Interface` is the SDK interface (loom::Dataset, loom::Model, …: a type with a KindTraits
  /// specialisation, declared in its kind's header, which must be included); the factory returns a
  /// std::shared_ptr to something derived from it.
  template <class Interface, class Factory>
  void add(FeatureInfo info, Factory factory) {
    info.kind = KindTraits<Interface>::kind;
    add(std::move(info), AnyFactory([f = std::move(factory)](const CreateContext& c) -> std::shared_ptr<void> {
          std::shared_ptr<Interface> object = f(c);
          return object;
        }));
  }
};

}  // namespace loom
