// Parameters are data: a plugin publishes a schema (ParamSpec list); the host validates the user's TOML
// table against it, fills in defaults and hands the plugin a typed, complete Params. No plugin parses TOML.
//
// Defaults live in the schema and nowhere else: Params::get() of a key the schema does not declare is a
// programming error in the plugin and throws.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace loom {

enum class ParamType { Bool, Int, Float, String, Choice, Path, IntList, FloatList, StringList, IntMap };

/// Human-readable type name, as used in error messages and `loom plugins NAME`.
inline const char* to_string(ParamType t) {
  switch (t) {
    case ParamType::Bool: return "bool";
    case ParamType::Int: return "int";
    case ParamType::Float: return "float";
    case ParamType::String: return "string";
    case ParamType::Choice: return "choice";
    case ParamType::Path: return "path";
    case ParamType::IntList: return "int list";
    case ParamType::FloatList: return "float list";
    case ParamType::StringList: return "string list";
    case ParamType::IntMap: return "int map";
  }
  return "?";
}

/// A parameter value. Choice and Path are carried as std::string; Path values reach the plugin already
/// resolved against the directory of the config file that set them. IntMap is a TOML inline table with
/// non-negative integer keys, e.g. `by_epoch = { 0 = 1, 4 = 2 }`; min/max bound its values.
using IntMap = std::map<int64_t, int64_t>;
using Value = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>,
                           std::vector<std::string>, IntMap>;

/// One parameter of a plugin's schema. Build with the named constructors and fluent setters:
///   ParamSpec::integer("steps", 4).range(1, 4096).doc("micro-batches per optimizer step")
///   ParamSpec::path("root").required().doc("directory holding the IDX files")
struct ParamSpec {
  std::string name;
  ParamType type = ParamType::String;
  std::optional<Value> default_value;    ///< empty for required (or optional-without-default) params
  bool is_required = false;
  std::optional<double> min, max;        ///< inclusive numeric bounds (Int, Float and their lists)
  std::vector<std::string> choices;      ///< allowed values for Choice
  std::string help;                      ///< one line, shown by `loom plugins NAME`
  /// Set for a parameter the plugin no longer takes: a table still using it is refused at its position
  /// with this text, which says what to write instead. Not shown as a parameter; never in Params.
  std::string removed_hint;
  /// A String parameter that names an augmentation pipeline (the `pipeline` of [[augmentation]] tables;
  /// "default" always exists): the host refuses, at config checking, a name no table declares. (SDK 0.5)
  bool names_pipeline = false;

  static ParamSpec boolean(std::string n, bool d) { return make(std::move(n), ParamType::Bool, Value{d}); }
  static ParamSpec integer(std::string n, int64_t d) { return make(std::move(n), ParamType::Int, Value{d}); }
  static ParamSpec real(std::string n, double d) { return make(std::move(n), ParamType::Float, Value{d}); }
  static ParamSpec string(std::string n, std::string d) {
    return make(std::move(n), ParamType::String, Value{std::move(d)});
  }
  static ParamSpec choice(std::string n, std::string d, std::vector<std::string> options) {
    ParamSpec s = make(std::move(n), ParamType::Choice, Value{std::move(d)});
    s.choices = std::move(options);
    return s;
  }
  static ParamSpec path(std::string n, std::string d = {}) {
    return make(std::move(n), ParamType::Path, d.empty() ? std::nullopt : std::optional<Value>(Value{d}));
  }
  static ParamSpec int_list(std::string n, std::vector<int64_t> d) {
    return make(std::move(n), ParamType::IntList, Value{std::move(d)});
  }
  static ParamSpec float_list(std::string n, std::vector<double> d) {
    return make(std::move(n), ParamType::FloatList, Value{std::move(d)});
  }
  static ParamSpec string_list(std::string n, std::vector<std::string> d) {
    return make(std::move(n), ParamType::StringList, Value{std::move(d)});
  }
  static ParamSpec int_map(std::string n, IntMap d) { return make(std::move(n), ParamType::IntMap, Value{std::move(d)}); }
  /// A parameter that was removed: `ParamSpec::removed("augment", "write [[augmentation]] ... instead")`.
  static ParamSpec removed(std::string n, std::string hint) {
    ParamSpec s = make(std::move(n), ParamType::String, std::nullopt);
    s.removed_hint = std::move(hint);
    return s;
  }
  bool is_removed() const { return !removed_hint.empty(); }

  ParamSpec& required() { is_required = true; default_value.reset(); return *this; }
  ParamSpec& range(double lo, double hi) { min = lo; max = hi; return *this; }
  ParamSpec& at_least(double lo) { min = lo; return *this; }
  ParamSpec& doc(std::string text) { help = std::move(text); return *this; }
  ParamSpec& pipeline_name() { names_pipeline = true; return *this; }

 private:
  static ParamSpec make(std::string n, ParamType t, std::optional<Value> d) {
    ParamSpec s;
    s.name = std::move(n);
    s.type = t;
    s.default_value = std::move(d);
    return s;
  }
};

using Schema = std::vector<ParamSpec>;

/// Validated, defaulted parameters of one plugin instance.
class Params {
 public:
  Params() = default;
  explicit Params(std::map<std::string, Value> values) : values_(std::move(values)) {}

  bool has(const std::string& name) const { return values_.count(name) != 0; }

  /// Typed access. T is one of Value's alternatives; Int values read as double where T is double.
  template <class T>
  T get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end())
      throw std::logic_error("parameter '" + name + "' is not set and has no default in the schema");
    if (const T* v = std::get_if<T>(&it->second)) return *v;
    if constexpr (std::is_same_v<T, double>) {
      if (const int64_t* i = std::get_if<int64_t>(&it->second)) return static_cast<double>(*i);
    }
    throw std::logic_error("parameter '" + name + "' read with a type the schema does not declare");
  }
  int64_t integer(const std::string& n) const { return get<int64_t>(n); }
  double real(const std::string& n) const { return get<double>(n); }
  bool boolean(const std::string& n) const { return get<bool>(n); }
  std::string str(const std::string& n) const { return get<std::string>(n); }

  const std::map<std::string, Value>& values() const { return values_; }

 private:
  std::map<std::string, Value> values_;
};

}  // namespace loom
