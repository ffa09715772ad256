#include "resolve.h"

#include "kinds_table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <regex>
#include <sstream>
#include <tuple>

namespace loom::host {

namespace fs = std::filesystem;

bool is_many_table(const std::string& table) {
  for (const KindInfo& k : kind_table())
    if (k.table == table) return k.cardinality == Cardinality::Many;
  return false;
}

const KindInfo& kind_info_by_table(const std::string& table) {
  for (const KindInfo& k : kind_table())
    if (k.table == table) return k;
  throw std::logic_error("no kind has table [" + table + "]");
}

const PluginChoice& ResolvedConfig::one(Kind kind) const {
  auto it = plugins.find(kind);
  if (it == plugins.end() || it->second.size() != 1)
    throw std::logic_error("config holds no single " + std::string(to_string(kind)) + " plugin");
  return it->second.front();
}

const std::vector<PluginChoice>& ResolvedConfig::many(Kind kind) const {
  static const std::vector<PluginChoice> none;
  auto it = plugins.find(kind);
  return it == plugins.end() ? none : it->second;
}

std::string neutral_plugin(Kind kind) { return kind_info(kind).neutral; }

static size_t edit_distance(const std::string& a, const std::string& b) {
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

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

static std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

static std::string describe_node(const toml::node& n) {
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
static std::string shorten(const std::string& s) { return s.size() <= 80 ? s : s.substr(0, 60) + "…"; }

static std::string fmt_num(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream o;
  o << v;
  return o.str();
}

namespace {

/// Validates one table against a schema; appends errors; returns the defaulted Params.
class TableChecker {
 public:
  TableChecker(const Config& config, std::vector<ConfigError>& errors) : config_(config), errors_(errors) {}

  Params check(const std::string& table_name, const std::string& what, const toml::table* table, const Schema& schema,
               bool has_plugin_key) {
    std::map<std::string, Value> values;
    std::vector<std::string> names;
    for (const auto& spec : schema) names.push_back(spec.name);
    if (table) {
      for (auto&& [key, node] : *table) {
        const std::string k(key.str());
        if (has_plugin_key && k == "plugin") continue;
        auto spec = std::find_if(schema.begin(), schema.end(), [&](const ParamSpec& s) { return s.name == k; });
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
      if (values.count(spec.name)) continue;
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
  fs::path working_dir(const SourcePos& p) {
    std::error_code ec;
    fs::path cwd = fs::current_path(ec);
    if (ec) error(p, "cannot read the working directory to resolve relative paths against: " + ec.message());
    return cwd;
  }

  /// The config file's directory, absolute; "" (with the error recorded) when it cannot be made so.
  fs::path config_dir(const SourcePos& p) {
    std::error_code ec;
    fs::path dir = fs::absolute(config_.dir(), ec);
    if (ec) error(p, "cannot make the config file's directory absolute: " + ec.message());
    return dir;
  }

  /// `p` made absolute against `base` and normalized, or nullopt with the error recorded. Every file
  /// system call takes an error_code: a path the file system refuses (too long, a loop of links, no
  /// permission) is the user's input, and must come back as an error at its position, not as an
  /// exception that ends the program.
  std::optional<std::string> resolve_path(const std::string& p, const fs::path& base, const SourcePos& pos,
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
    fs::path path(p);
    if (p[0] == '~') {
      if (const char* home = std::getenv("HOME")) path = fs::path(home) / p.substr(p.size() > 1 && p[1] == '/' ? 2 : 1);
    }
    if (!path.is_absolute()) path = base / path;
    const std::string full = path.string();
    if (full.size() >= kPathMax) {
      error(pos, where + " is a path of " + std::to_string(full.size()) + " bytes (" + shorten(full) +
                     "); the file system allows at most " + std::to_string(kPathMax - 1));
      return std::nullopt;
    }
    for (const fs::path& part : path) {
      if (part.native().size() > kNameMax) {
        error(pos, where + " has a name of " + std::to_string(part.native().size()) + " bytes in its path (" +
                       shorten(part.native()) + "); the file system allows at most " + std::to_string(kNameMax) +
                       " bytes per name");
        return std::nullopt;
      }
    }
    std::error_code ec;
    fs::path resolved = fs::weakly_canonical(path, ec);
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

/// Where run.name's value is (or its table's header when it is the default).
SourcePos run_key_pos(const Config& config, const std::string& key) {
  const toml::table* run = config.root()["run"].as_table();
  const toml::node* n = run ? run->get(key) : nullptr;
  return n ? config.pos_of("run", key, *n) : config.pos_of_table("run");
}

/// run.name becomes a directory (<output_dir>/<name>/), a line of config.resolved.toml's resume comment
/// and a JSON string: anything a path, that comment or JSON cannot hold passes check and fails the run
/// (or its --resume) later.
void check_run_name(const Config& config, const Params& run, std::vector<ConfigError>& errors) {
  if (!run.has("name")) return;  // its type error is recorded already
  const std::string name = run.str("name");
  std::string problem;
  if (name.empty()) problem = "is empty";
  else if (name.size() > 100) problem = "is " + std::to_string(name.size()) + " bytes long; at most 100 are allowed";
  else if (invalid_utf8_at(name)) return;  // reported by the type check
  else if (name == "." || name == "..") problem = "is \"" + name + "\", which names no new directory";
  else if (name.find('/') != std::string::npos) problem = "contains '/'";
  else if (std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; }))
    problem = "contains a control character";
  if (problem.empty()) return;
  errors.push_back({run_key_pos(config, "name"),
                    "'name' in [run] " + problem + "; the run name becomes a directory name: use 1 to 100 bytes of "
                    "text without '/' or control characters, e.g. name = \"quickstart\""});
}

/// The run creates <output_dir>/<name>/<timestamp>/: an existing file on that path, or a path the run
/// directory would make too long, fails the run after its plugins were created; check says it first.
/// Nothing is created, and nothing is required to exist yet.
void check_output_dir(const Config& config, const Params& run, std::vector<ConfigError>& errors) {
  if (!run.has("output_dir") || !run.has("name")) return;
  const fs::path dir = run.str("output_dir");
  // <timestamp>-N/config.resolved.toml: about 50 bytes below <name>.
  const size_t needed = dir.native().size() + 1 + run.str("name").size() + 50;
  if (needed >= kPathMax) {
    errors.push_back({run_key_pos(config, "output_dir"),
                      "'output_dir' in [run] is " + std::to_string(dir.native().size()) +
                          " bytes long; with the run name and the run directory's files the paths would pass the "
                          "file system's limit of " + std::to_string(kPathMax - 1) + " bytes"});
    return;
  }
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    std::error_code ec;
    const fs::file_status st = fs::status(p, ec);
    if (st.type() == fs::file_type::not_found) {
      if (p == p.parent_path()) break;
      continue;
    }
    if (ec || !fs::is_directory(st)) {
      errors.push_back({run_key_pos(config, "output_dir"),
                        "'output_dir' in [run] cannot hold run directories: " + shorten(p.string()) +
                            (ec ? ": " + ec.message() : std::string(" exists and is not a directory"))});
    }
    break;
  }
}

/// Where a top-level table is: its place in the file, or, for a table only --set created (which has
/// none), the first --set expression that wrote into it.
SourcePos top_level_pos(const Config& config, const std::string& name, const toml::source_region& region) {
  SourcePos where = config.pos(region);
  if (where.line != 0) return where;
  if (const toml::table* t = config.root()[name].as_table())
    for (auto&& [k, v] : *t)
      if (config.overridden(name, std::string(k.str()))) return config.pos_of(name, std::string(k.str()), v);
  return config.pos_of_table(name);
}

bool valid_device(const std::string& d) {
  static const std::regex re("auto|cpu|cuda(:[0-9]+)?");
  return std::regex_match(d, re);
}

/// One plugin table ([dataset], or one [[callback]] element named `tname`, e.g. "callback[1]"): finds
/// the plugin and validates its parameters. nullopt (with errors recorded) when it cannot.
std::optional<PluginChoice> resolve_plugin(const Config& config, const Registry& registry, TableChecker& checker,
                                           std::vector<ConfigError>& errors, const KindInfo& info,
                                           const std::string& tname, const toml::table* t) {
  const Kind kind = info.kind;
  std::string plugin = info.neutral;
  SourcePos plugin_pos = config.pos_of_table(tname);
  auto known = [&] {
    std::vector<std::string> names;
    for (auto* f : registry.features(kind)) names.push_back(f->info.name);
    return names;
  };
  if (t) {
    if (const toml::node* p = t->get("plugin")) {
      plugin_pos = config.pos_of(tname, "plugin", *p);
      if (!p->is_string()) {
        errors.push_back({plugin_pos, "'plugin' in [" + tname + "] must be a string naming a " + info.table +
                                          " plugin, found " + describe_node(*p)});
        return std::nullopt;
      }
      plugin = std::string(*p->as_string());
    } else {
      errors.push_back({plugin_pos, "[" + tname + "] has no 'plugin' key; add plugin = \"<name>\" (known " + info.table +
                                        " plugins: " + join(known()) + ")"});
      return std::nullopt;
    }
  } else if (plugin.empty()) {
    const auto names = known();
    errors.push_back({plugin_pos, "missing required table [" + tname + "]; add it with plugin = \"<name>\" (known " + tname +
                                      " plugins: " + (names.empty() ? std::string("none found") : join(names)) + ")"});
    return std::nullopt;
  }
  const Feature* feature = registry.find(kind, plugin);
  if (!feature) {
    const auto names = known();
    std::string msg = "unknown " + info.table + " plugin '" + plugin + "'";
    if (std::string near = closest(plugin, names); !near.empty()) msg += "; did you mean '" + near + "'?";
    msg += " Known " + info.table + " plugins: " + (names.empty() ? std::string("none found") : join(names));
    if (!registry.failures().empty())
      msg += " (" + std::to_string(registry.failures().size()) + " plugin libraries failed to load; see `loom plugins`)";
    const auto& searched = registry.searched();
    if (!searched.empty()) {
      msg += ". Searched:";
      for (const auto& dir : searched) msg += " " + dir.string();
    }
    errors.push_back({plugin_pos, msg});
    return std::nullopt;
  }
  PluginChoice choice;
  choice.feature = feature;
  choice.params = checker.check(tname, " (plugin '" + plugin + "')", t, feature->info.params, true);
  return choice;
}

}  // namespace

std::vector<fs::path> early_plugin_paths(const Config& config) {
  std::vector<ConfigError> ignored;
  TableChecker checker(config, ignored);
  Params run = checker.check("run", "", config.root()["run"].as_table(), run_schema(), false);
  std::vector<fs::path> out;
  if (run.has("plugin_paths"))
    for (const auto& p : run.get<std::vector<std::string>>("plugin_paths")) out.emplace_back(p);
  return out;
}

ResolvedConfig resolve(const Config& config, const Registry& registry) {
  std::vector<ConfigError> errors;
  TableChecker checker(config, errors);
  ResolvedConfig out;
  std::error_code ec;
  out.file = fs::absolute(config.file(), ec);
  if (ec) errors.push_back({SourcePos{config.file().string()}, "cannot make the config file's path absolute: " + ec.message()});

  std::vector<std::string> known_tables = {"run", "loader", "optimizer", "lr_schedule"};
  for (const KindInfo& k : kind_table()) known_tables.push_back(k.table);
  for (auto&& [key, node] : config.root()) {
    const std::string name(key.str());
    const SourcePos where = top_level_pos(config, name, key.source());
    if (std::find(known_tables.begin(), known_tables.end(), name) == known_tables.end()) {
      std::string msg = "unknown table [" + name + "]";
      if (std::string near = closest(name, known_tables); !near.empty()) msg += "; did you mean [" + near + "]?";
      else msg += "; valid tables: " + join(known_tables);
      errors.push_back({where, msg});
    } else if (!node.is_table() && !(node.is_array() && is_many_table(name))) {
      errors.push_back({where, "'" + name + "' must be a table ([" + name + "]), found " + describe_node(node)});
    }
  }

  auto table = [&](const std::string& n) { return config.root()[n].as_table(); };
  out.run = checker.check("run", "", table("run"), run_schema(), false);
  out.loader = checker.check("loader", "", table("loader"), loader_schema(), false);
  out.optimizer = checker.check("optimizer", "", table("optimizer"), optimizer_schema(), false);
  out.lr_schedule = checker.check("lr_schedule", "", table("lr_schedule"), lr_schedule_schema(), false);
  check_run_name(config, out.run, errors);
  check_output_dir(config, out.run, errors);
  if (out.optimizer.has("name") && out.optimizer.str("name") == "sgd" && out.optimizer.has("nesterov") &&
      out.optimizer.boolean("nesterov") && out.optimizer.has("momentum") && out.optimizer.real("momentum") <= 0.0) {
    // torch::optim::SGD refuses this when the run creates the optimizer; say it here, where check sees it.
    const toml::node* n = table("optimizer") ? table("optimizer")->get("nesterov") : nullptr;
    errors.push_back({n ? config.pos_of("optimizer", "nesterov", *n) : config.pos_of_table("optimizer"),
                      "'nesterov' in [optimizer] is true but momentum is 0; Nesterov momentum needs momentum > 0"});
  }
  if (out.run.has("device") && !valid_device(out.run.str("device"))) {
    const toml::node* n = table("run") ? table("run")->get("device") : nullptr;
    errors.push_back({n ? config.pos_of("run", "device", *n) : config.pos_of_table("run"),
                      "'device' in [run] is \"" + out.run.str("device") + "\"; expected auto, cpu, cuda or cuda:N"});
  }

  for (const KindInfo& info : kind_table()) {
    if (info.cardinality == Cardinality::One) {
      if (auto choice = resolve_plugin(config, registry, checker, errors, info, info.table, table(info.table)))
        out.plugins[info.kind].push_back(std::move(*choice));
      continue;
    }
    // [[callback]]: an array of tables, one plugin each, in file order.
    std::vector<PluginChoice>& list = out.plugins[info.kind];
    if (!info.always.empty() && !registry.find(info.kind, info.always)) {
      errors.push_back({config.pos_of_table(info.table), "the " + info.table + " plugin '" + info.always +
                                                             "' every run uses was not found; is the built-in plugin "
                                                             "directory complete? (see `loom plugins`)"});
    } else if (!info.always.empty()) {
      PluginChoice always;
      always.feature = registry.find(info.kind, info.always);
      always.params = checker.check(info.table, " (plugin '" + info.always + "')", nullptr, always.feature->info.params, true);
      list.push_back(std::move(always));
    }
    const toml::node* node = config.root().get(info.table);
    if (!node) continue;
    const toml::array* array = node->as_array();
    if (!array || !array->is_array_of_tables()) {
      errors.push_back({top_level_pos(config, info.table, node->source()), "'" + info.table + "' must be an array of tables: write [[" + info.table +
                                                        "]] once per " + info.table + ", each with plugin = \"<name>\""});
      continue;
    }
    for (size_t i = 0; i < array->size(); ++i) {
      const std::string element = info.table + "[" + std::to_string(i) + "]";
      auto choice = resolve_plugin(config, registry, checker, errors, info, element, (*array)[i].as_table());
      if (!choice) continue;
      if (!info.always.empty() && choice->feature->info.name == info.always) {
        list.front().params = std::move(choice->params);  // configures the always-present plugin; no second copy
        continue;
      }
      list.push_back(std::move(*choice));
    }
  }

  // A run refuses test_on = "best" unless a callback keeps a best model; without any [[callback]] none
  // can, and check should say so rather than pass a config the run rejects.
  if (out.run.has("test_on") && out.run.str("test_on") == "best" && !config.root().get("callback")) {
    const toml::node* n = table("run") ? table("run")->get("test_on") : nullptr;
    errors.push_back({n ? config.pos_of("run", "test_on", *n) : config.pos_of_table("run"),
                      "'test_on' in [run] is \"best\", which needs a [[callback]] that keeps a best model (e.g. "
                      "plugin = \"best-checkpoint\"); add one, or set test_on = \"last\""});
  }

  if (!errors.empty()) {
    // File positions in reading order, then --set overrides.
    std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
      auto key = [](const ConfigError& e) { return std::tuple(!e.pos.override_expr.empty(), e.pos.line, e.pos.column); };
      return key(a) < key(b);
    });
    throw ConfigErrors(std::move(errors));
  }
  return out;
}

}  // namespace loom::host
