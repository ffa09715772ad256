#include "config/table_checker.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace loom::host {

namespace {

/// A TOML number as a double: an integer always, a float unless `integral`; nullopt for anything else.
std::optional<double> table_checker_number(const toml::node& n, bool integral) {
  if (n.is_integer()) return static_cast<double>(n.as_integer()->get());
  if (!integral && n.is_floating_point()) return n.as_floating_point()->get();
  return std::nullopt;
}

/// "0x1F": a byte as an error message names it.
std::string table_checker_hex(char c) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(c));
  return hex;
}

}  // namespace

Params TableChecker::check(const std::string& table_name, const std::string& what, const toml::table* table,
                           const Schema& schema, bool has_plugin_key, const std::string& host_key) {
  std::map<std::string, Value> values;
  std::vector<std::string> names;
  for (const auto& spec : schema)
    if (!spec.is_removed()) names.push_back(spec.name);
  if (table) {
    for (auto&& [key, node] : *table) {
      const std::string k(key.str());
      if (has_plugin_key && k == "plugin") continue;
      if (!host_key.empty() && k == host_key) continue;
      if (refuse_key(table_name, what, schema, names, key, node)) continue;
      auto spec = std::find_if(schema.begin(), schema.end(), [&](const ParamSpec& s) { return s.name == k; });
      if (auto v = convert(table_name, what, *spec, node)) values[k] = *v;
    }
  }
  fill_defaults(table_name, what, schema, values);
  return Params(std::move(values));
}

bool TableChecker::refuse_key(const std::string& table_name, const std::string& what, const Schema& schema,
                              const std::vector<std::string>& names, const toml::key& key, const toml::node& node) {
  const std::string k(key.str());
  auto spec = std::find_if(schema.begin(), schema.end(), [&](const ParamSpec& s) { return s.name == k; });
  if (spec != schema.end() && spec->is_removed()) {
    SourcePos p = config_.overridden(table_name, k) ? config_.pos_of(table_name, k, node) : config_.pos(key.source());
    errors_.push_back({p, "'" + k + "' in [" + table_name + "]" + what + " is no longer a parameter: " + spec->removed_hint});
    return true;
  }
  if (spec == schema.end()) {
    std::string msg = "unknown key '" + k + "' in [" + table_name + "]" + what;
    if (std::string near = closest(k, names); !near.empty())
      msg += "; did you mean '" + near + "'?";
    else
      msg += names.empty() ? "; it takes no parameters" : "; valid keys: " + join(names);
    SourcePos p = config_.overridden(table_name, k) ? config_.pos_of(table_name, k, node) : config_.pos(key.source());
    errors_.push_back({p, msg});
    return true;
  }
  return false;
}

void TableChecker::fill_defaults(const std::string& table_name, const std::string& what, const Schema& schema,
                                 std::map<std::string, Value>& values) {
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
}

std::filesystem::path TableChecker::working_dir(const SourcePos& p) {
  std::error_code ec;
  std::filesystem::path cwd = std::filesystem::current_path(ec);
  if (ec) error(p, "cannot read the working directory to resolve relative paths against: " + ec.message());
  return cwd;
}

std::filesystem::path TableChecker::config_dir(const SourcePos& p) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(config_.dir(), ec);
  if (ec) error(p, "cannot make the config file's directory absolute: " + ec.message());
  return dir;
}

std::optional<std::string> TableChecker::resolve_path(const std::string& p, const std::filesystem::path& base,
                                                      const SourcePos& pos, const std::string& where) {
  if (p.empty()) return p;
  if (base.empty()) return std::nullopt;  // the working directory's error is recorded already
  for (const char c : p) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      error(pos, where + " contains the control character " + table_checker_hex(c) +
                     "; a path must be plain text (the run's records and its resume line name it)");
      return std::nullopt;
    }
  }
  std::filesystem::path path(p);
  if (p[0] == '~') {
    if (const char* home = std::getenv("HOME")) path = std::filesystem::path(home) / p.substr(p.size() > 1 && p[1] == '/' ? 2 : 1);
  }
  if (!path.is_absolute()) path = base / path;
  if (!check_path_lengths(path, pos, where)) return std::nullopt;
  std::error_code ec;
  std::filesystem::path resolved = std::filesystem::weakly_canonical(path, ec);
  if (ec) {
    error(pos, where + " cannot be resolved (" + shorten(path.string()) + "): " + ec.message());
    return std::nullopt;
  }
  return resolved.string();
}

bool TableChecker::check_path_lengths(const std::filesystem::path& path, const SourcePos& pos, const std::string& where) {
  const std::string full = path.string();
  if (full.size() >= kPathMax) {
    error(pos, where + " is a path of " + std::to_string(full.size()) + " bytes (" + shorten(full) +
                   "); the file system allows at most " + std::to_string(kPathMax - 1));
    return false;
  }
  for (const std::filesystem::path& part : path) {
    if (part.native().size() > kNameMax) {
      error(pos, where + " has a name of " + std::to_string(part.native().size()) + " bytes in its path (" +
                     shorten(part.native()) + "); the file system allows at most " + std::to_string(kNameMax) +
                     " bytes per name");
      return false;
    }
  }
  return true;
}

bool TableChecker::valid_utf8(const SourcePos& p, const std::string& where, const std::string& s) {
  if (auto bad = invalid_utf8_at(s)) {
    error(p, where + " is not valid UTF-8 (byte " + table_checker_hex(s[*bad]) + " at offset " + std::to_string(*bad) +
                 "); strings must be UTF-8 text");
    return false;
  }
  return true;
}

bool TableChecker::check_range(const SourcePos& p, const std::string& where, const ParamSpec& spec, double v) {
  if ((spec.min && v < *spec.min) || (spec.max && v > *spec.max)) {
    std::string range = spec.min && spec.max ? "between " + fmt_num(*spec.min) + " and " + fmt_num(*spec.max)
                        : spec.min          ? "at least " + fmt_num(*spec.min)
                                            : "at most " + fmt_num(*spec.max);
    error(p, where + " is " + fmt_num(v) + ", out of range: expected " + range);
    return false;
  }
  return true;
}

std::nullopt_t TableChecker::wrong_type(const SourcePos& p, const std::string& where, const std::string& expected,
                                        const toml::node& node) {
  error(p, where + " must be " + expected + ", found " + describe_node(node));
  return std::nullopt;
}

std::optional<Value> TableChecker::convert(const std::string& table, const std::string& what, const ParamSpec& spec,
                                           const toml::node& node) {
  const SourcePos p = config_.pos_of(table, spec.name, node);
  const std::string where = "'" + spec.name + "' in [" + table + "]" + what;
  switch (spec.type) {
    case ParamType::Bool:
      if (!node.is_boolean()) return wrong_type(p, where, "a boolean (true or false)", node);
      return Value{node.as_boolean()->get()};
    case ParamType::Int: {
      if (!node.is_integer()) return wrong_type(p, where, "an integer", node);
      const int64_t v = node.as_integer()->get();
      if (!check_range(p, where, spec, static_cast<double>(v))) return std::nullopt;
      return Value{v};
    }
    case ParamType::Float: {
      auto v = table_checker_number(node, false);
      if (!v) return wrong_type(p, where, "a number", node);
      if (!std::isfinite(*v)) return wrong_type(p, where, "a finite number", node);
      if (!check_range(p, where, spec, *v)) return std::nullopt;
      return Value{*v};
    }
    case ParamType::String:
    case ParamType::Path:
    case ParamType::Choice: return convert_string(table, spec, node, p, where);
    case ParamType::IntMap: return convert_int_map(spec, node, p, where);
    case ParamType::IntList:
    case ParamType::FloatList:
    case ParamType::StringList: return convert_list(table, spec, node, p, where);
  }
  return std::nullopt;
}

std::optional<Value> TableChecker::convert_string(const std::string& table, const ParamSpec& spec,
                                                  const toml::node& node, const SourcePos& p,
                                                  const std::string& where) {
  if (!node.is_string())
    return wrong_type(p, where, spec.type == ParamType::Choice ? "one of: " + join(spec.choices) : std::string("a string"),
                      node);
  std::string s(*node.as_string());
  if (!valid_utf8(p, where, s)) return std::nullopt;
  if (spec.type == ParamType::Choice && std::find(spec.choices.begin(), spec.choices.end(), s) == spec.choices.end()) {
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

std::optional<Value> TableChecker::convert_int_map(const ParamSpec& spec, const toml::node& node, const SourcePos& p,
                                                   const std::string& where) {
  static const std::string expected = "an inline table of integer keys to integers, e.g. { 0 = 1, 4 = 2 }";
  const toml::table* t = node.as_table();
  if (!t) return wrong_type(p, where, expected, node);
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
    if (!v.is_integer()) return wrong_type(p, where, expected, node);
    const int64_t value = v.as_integer()->get();
    if (!check_range(p, where + " value at key " + key, spec, static_cast<double>(value))) return std::nullopt;
    map[parsed] = value;
  }
  return Value{map};
}

std::optional<Value> TableChecker::convert_list(const std::string& table, const ParamSpec& spec, const toml::node& node,
                                                const SourcePos& p, const std::string& where) {
  const toml::array* arr = node.as_array();
  const std::string elem = spec.type == ParamType::IntList ? "integers" : spec.type == ParamType::FloatList ? "numbers" : "strings";
  if (!arr) return wrong_type(p, where, "an array of " + elem, node);
  std::vector<int64_t> ints;
  std::vector<double> reals;
  std::vector<std::string> strs;
  for (const toml::node& item : *arr) {
    if (spec.type == ParamType::StringList) {
      if (!item.is_string()) return wrong_type(p, where, "an array of " + elem, node);
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
    auto v = table_checker_number(item, spec.type == ParamType::IntList);
    if (!v) return wrong_type(p, where, "an array of " + elem, node);
    if (!check_range(p, where + " element", spec, *v)) return std::nullopt;
    if (spec.type == ParamType::IntList) ints.push_back(item.as_integer()->get()); else reals.push_back(*v);
  }
  if (spec.type == ParamType::IntList) return Value{ints};
  if (spec.type == ParamType::FloatList) return Value{reals};
  return Value{strs};
}

}  // namespace loom::host
