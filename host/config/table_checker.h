// TableChecker: validates one TOML table against a schema (types, ranges, choices, paths, UTF-8),
// appending every error with its position, and returns the defaulted Params. Used by resolve() for the
// host's tables and every plugin table.
#pragma once

#include "config/config.h"
#include "config/resolve.h"

#include <loom/params.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace loom::host {

inline size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}


inline std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

inline std::string describe_node(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "string \"" + std::string(*n.as_string()) + "\"";
    case toml::node_type::integer: return "integer " + std::to_string(n.as_integer()->get());
    case toml::node_type::floating_point: { std::ostringstream o; o << "float " << n.as_floating_point()->get(); return o.str(); }
    case toml::node_type::boolean: return n.as_boolean()->get() ? "boolean true" : "boolean false";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

// Linux's limits (PATH_MAX counts the terminating NUL); every file system Loom runs on has them.
constexpr size_t kPathMax = 4096;
constexpr size_t kNameMax = 255;

/// The start of a long path or name, for an error message that must not be kilobytes long.
inline std::string shorten(const std::string& s) { return s.size() <= 80 ? s : s.substr(0, 60) + "…"; }

inline std::string fmt_num(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream o;
  o << v;
  return o.str();
}

/// Validates one table against a schema; appends errors; returns the defaulted Params.
class TableChecker {
 public:
  TableChecker(const Config& config, std::vector<ConfigError>& errors) : config_(config), errors_(errors) {}

  /// `host_key`: a key besides `plugin` that the host reads from this table itself (augmentation's
  /// `pipeline`), skipped here.
  Params check(const std::string& table_name, const std::string& what, const toml::table* table, const Schema& schema,
               bool has_plugin_key, const std::string& host_key = {}) {
    std::map<std::string, Value> values;
    std::vector<std::string> names;
    for (const auto& spec : schema)
      if (!spec.is_removed()) names.push_back(spec.name);
    if (table) {
      for (auto&& [key, node] : *table) {
        const std::string k(key.str());
        if (has_plugin_key && k == "plugin") continue;
        if (!host_key.empty() && k == host_key) continue;
        auto spec = std::find_if(schema.begin(), schema.end(), [&](const ParamSpec& s) { return s.name == k; });
        if (spec != schema.end() && spec->is_removed()) {
          SourcePos p = config_.overridden(table_name, k) ? config_.pos_of(table_name, k, node) : config_.pos(key.source());
          errors_.push_back({p, "'" + k + "' in [" + table_name + "]" + what + " is no longer a parameter: " + spec->removed_hint});
          continue;
        }
        if (spec == schema.end()) {
          std::string msg = "unknown key '" + k + "' in [" + table_name + "]" + what;
          if (std::string near = closest(k, names); !near.empty())
            msg += "; did you mean '" + near + "'?";
          else
            msg += names.empty() ? "; it takes no parameters" : "; valid keys: " + join(names);
          SourcePos p = config_.overridden(table_name, k) ? config_.pos_of(table_name, k, node) : config_.pos(key.source());
          errors_.push_back({p, msg});
          continue;
        }
        if (auto v = convert(table_name, what, *spec, node)) values[k] = *v;
      }
    }
    for (const auto& spec : schema) {
      if (spec.is_removed() || values.count(spec.name)) continue;
      if (spec.default_value) {
        Value v = *spec.default_value;
        if (spec.type == ParamType::Path) {
          const std::string where = "'" + spec.name + "' in [" + table_name + "]" + what + " (default)";
          auto path = resolve_path(std::get<std::string>(v), working_dir(config_.pos_of_table(table_name)),
                                   config_.pos_of_table(table_name), where);
          if (!path) continue;
          v = *path;
        }
        values[spec.name] = v;
      } else if (spec.is_required) {
        errors_.push_back({config_.pos_of_table(table_name), "missing required key '" + spec.name + "' in [" +
                                                                 table_name + "]" + what + " (" + to_string(spec.type) +
                                                                 "): " + spec.help});
      }
    }
    return Params(std::move(values));
  }

 private:
  /// The directory --set paths and defaults resolve against; "" (with the error recorded) when the
  /// working directory is gone.
  std::filesystem::path working_dir(const SourcePos& p) {
    std::error_code ec;
    std::filesystem::path cwd = std::filesystem::current_path(ec);
    if (ec) error(p, "cannot read the working directory to resolve relative paths against: " + ec.message());
    return cwd;
  }

  /// The config file's directory, absolute; "" (with the error recorded) when it cannot be made so.
  std::filesystem::path config_dir(const SourcePos& p) {
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::absolute(config_.dir(), ec);
    if (ec) error(p, "cannot make the config file's directory absolute: " + ec.message());
    return dir;
  }

  /// `p` made absolute against `base` and normalized, or nullopt with the error recorded. Every file
  /// system call takes an error_code: a path the file system refuses (too long, a loop of links, no
  /// permission) is the user's input, and must come back as an error at its position, not as an
  /// exception that ends the program.
  std::optional<std::string> resolve_path(const std::string& p, const std::filesystem::path& base, const SourcePos& pos,
                                          const std::string& where) {
    if (p.empty()) return p;
    if (base.empty()) return std::nullopt;  // the working directory's error is recorded already
    for (const char c : p) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(c));
        error(pos, where + " contains the control character " + std::string(hex) +
                       "; a path must be plain text (the run's records and its resume line name it)");
        return std::nullopt;
      }
    }
    std::filesystem::path path(p);
    if (p[0] == '~') {
      if (const char* home = std::getenv("HOME")) path = std::filesystem::path(home) / p.substr(p.size() > 1 && p[1] == '/' ? 2 : 1);
    }
    if (!path.is_absolute()) path = base / path;
    const std::string full = path.string();
    if (full.size() >= kPathMax) {
      error(pos, where + " is a path of " + std::to_string(full.size()) + " bytes (" + shorten(full) +
                     "); the file system allows at most " + std::to_string(kPathMax - 1));
      return std::nullopt;
    }
    for (const std::filesystem::path& part : path) {
      if (part.native().size() > kNameMax) {
        error(pos, where + " has a name of " + std::to_string(part.native().size()) + " bytes in its path (" +
                       shorten(part.native()) + "); the file system allows at most " + std::to_string(kNameMax) +
                       " bytes per name");
        return std::nullopt;
      }
    }
    std::error_code ec;
    std::filesystem::path resolved = std::filesystem::weakly_canonical(path, ec);
    if (ec) {
      error(pos, where + " cannot be resolved (" + shorten(full) + "): " + ec.message());
      return std::nullopt;
    }
    return resolved.string();
  }

  void error(const SourcePos& p, std::string msg) { errors_.push_back({p, std::move(msg)}); }

  /// TOML files are UTF-8 (toml++ checks), but a --set value is whatever bytes the shell passed; a string
  /// that is not UTF-8 would pass here and fail later, when a run writes it into JSON.
  bool valid_utf8(const SourcePos& p, const std::string& where, const std::string& s) {
    if (auto bad = invalid_utf8_at(s)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(s[*bad]));
      error(p, where + " is not valid UTF-8 (byte " + std::string(hex) + " at offset " + std::to_string(*bad) +
                   "); strings must be UTF-8 text");
      return false;
    }
    return true;
  }

  bool check_range(const SourcePos& p, const std::string& where, const ParamSpec& spec, double v) {
    if ((spec.min && v < *spec.min) || (spec.max && v > *spec.max)) {
      std::string range = spec.min && spec.max ? "between " + fmt_num(*spec.min) + " and " + fmt_num(*spec.max)
                          : spec.min          ? "at least " + fmt_num(*spec.min)
                                              : "at most " + fmt_num(*spec.max);
      error(p, where + " is " + fmt_num(v) + ", out of range: expected " + range);
      return false;
    }
    return true;
  }

  std::optional<Value> convert(const std::string& table, const std::string& what, const ParamSpec& spec,
                               const toml::node& node) {
    const SourcePos p = config_.pos_of(table, spec.name, node);
    const std::string where = "'" + spec.name + "' in [" + table + "]" + what;
    auto wrong_type = [&](const std::string& expected) {
      error(p, where + " must be " + expected + ", found " + describe_node(node));
      return std::nullopt;
    };
    auto number = [&](const toml::node& n, bool integral) -> std::optional<double> {
      if (n.is_integer()) return static_cast<double>(n.as_integer()->get());
      if (!integral && n.is_floating_point()) return n.as_floating_point()->get();
      return std::nullopt;
    };
    switch (spec.type) {
      case ParamType::Bool:
        if (!node.is_boolean()) return wrong_type("a boolean (true or false)");
        return Value{node.as_boolean()->get()};
      case ParamType::Int: {
        if (!node.is_integer()) return wrong_type("an integer");
        const int64_t v = node.as_integer()->get();
        if (!check_range(p, where, spec, static_cast<double>(v))) return std::nullopt;
        return Value{v};
      }
      case ParamType::Float: {
        auto v = number(node, false);
        if (!v) return wrong_type("a number");
        if (!std::isfinite(*v)) return wrong_type("a finite number");
        if (!check_range(p, where, spec, *v)) return std::nullopt;
        return Value{*v};
      }
      case ParamType::String:
      case ParamType::Path:
      case ParamType::Choice: {
        if (!node.is_string()) return wrong_type(spec.type == ParamType::Choice ? "one of: " + join(spec.choices)
                                                                                   : std::string("a string"));
        std::string s(*node.as_string());
        if (!valid_utf8(p, where, s)) return std::nullopt;
        if (spec.type == ParamType::Choice &&
            std::find(spec.choices.begin(), spec.choices.end(), s) == spec.choices.end()) {
          std::string msg = where + " is \"" + s + "\"; expected one of: " + join(spec.choices);
          if (std::string near = closest(s, spec.choices); !near.empty()) msg += " (did you mean \"" + near + "\"?)";
          error(p, msg);
          return std::nullopt;
        }
        if (spec.type == ParamType::Path) {
          const bool from_cli = config_.overridden(table, spec.name);
          auto path = resolve_path(s, from_cli ? working_dir(p) : config_dir(p), p, where);
          if (!path) return std::nullopt;
          s = *path;
        }
        return Value{s};
      }
      case ParamType::IntMap: {
        const toml::table* t = node.as_table();
        if (!t) return wrong_type("an inline table of integer keys to integers, e.g. { 0 = 1, 4 = 2 }");
        IntMap map;
        for (auto&& [k, v] : *t) {
          const std::string key(k.str());
          int64_t parsed = -1;
          try {
            size_t used = 0;
            parsed = std::stoll(key, &used);
            if (used != key.size()) parsed = -1;
          } catch (const std::exception&) {
            parsed = -1;
          }
          if (parsed < 0) {
            error(p, where + " has key '" + key + "'; keys must be non-negative integers, e.g. { 0 = 1, 4 = 2 }");
            return std::nullopt;
          }
          if (!v.is_integer()) return wrong_type("an inline table of integer keys to integers, e.g. { 0 = 1, 4 = 2 }");
          const int64_t value = v.as_integer()->get();
          if (!check_range(p, where + " value at key " + key, spec, static_cast<double>(value))) return std::nullopt;
          map[parsed] = value;
        }
        return Value{map};
      }
      case ParamType::IntList:
      case ParamType::FloatList:
      case ParamType::StringList: {
        const toml::array* arr = node.as_array();
        const std::string elem = spec.type == ParamType::IntList ? "integers" : spec.type == ParamType::FloatList ? "numbers" : "strings";
        if (!arr) return wrong_type("an array of " + elem);
        std::vector<int64_t> ints;
        std::vector<double> reals;
        std::vector<std::string> strs;
        for (const toml::node& item : *arr) {
          if (spec.type == ParamType::StringList) {
            if (!item.is_string()) return wrong_type("an array of " + elem);
            std::string s(*item.as_string());
            if (!valid_utf8(p, where + " element", s)) return std::nullopt;
            if (table == "run" && spec.name == "plugin_paths") {
              auto path = resolve_path(s, config_dir(p), p, where + " element");
              if (!path) return std::nullopt;
              s = *path;
            }
            strs.push_back(s);
            continue;
          }
          auto v = number(item, spec.type == ParamType::IntList);
          if (!v) return wrong_type("an array of " + elem);
          if (!check_range(p, where + " element", spec, *v)) return std::nullopt;
          if (spec.type == ParamType::IntList) ints.push_back(item.as_integer()->get()); else reals.push_back(*v);
        }
        if (spec.type == ParamType::IntList) return Value{ints};
        if (spec.type == ParamType::FloatList) return Value{reals};
        return Value{strs};
      }
    }
    return std::nullopt;
  }

  const Config& config_;
  std::vector<ConfigError>& errors_;
};

}  // namespace loom::host
