// resolve()'s plugin tables: each kind's table(s) in the kinds table's order, each plugin found in the
// registry and its parameters checked against its schema, and [student_model] over [model].
#include "config/resolve_steps.h"

#include "plugins/kinds.h"

#include <algorithm>
#include <regex>

namespace loom::host {

namespace {

std::vector<std::string> known_plugins(const Registry& registry, Kind kind) {
  std::vector<std::string> names;
  for (auto* f : registry.features(kind)) names.push_back(f->info.name);
  return names;
}

/// The plugin table `tname` names: its `plugin` key, or the kind's neutral plugin when the table is
/// absent. nullopt (with the error recorded) when it names none. `plugin_pos`: where that name is.
std::optional<std::string> plugin_name_of(const Config& config, const Registry& registry,
                                          std::vector<ConfigError>& errors, const KindInfo& info,
                                          const std::string& tname, const toml::table* t, SourcePos& plugin_pos) {
  plugin_pos = config.pos_of_table(tname);
  if (!t) {
    if (!info.neutral.empty()) return info.neutral;
    const auto names = known_plugins(registry, info.kind);
    errors.push_back({plugin_pos, "missing required table [" + tname + "]; add it with plugin = \"<name>\" (known " + tname +
                                      " plugins: " + (names.empty() ? std::string("none found") : join(names)) + ")"});
    return std::nullopt;
  }
  const toml::node* p = t->get("plugin");
  if (!p) {
    errors.push_back({plugin_pos, "[" + tname + "] has no 'plugin' key; add plugin = \"<name>\" (known " + info.table +
                                      " plugins: " + join(known_plugins(registry, info.kind)) + ")"});
    return std::nullopt;
  }
  plugin_pos = config.pos_of(tname, "plugin", *p);
  if (!p->is_string()) {
    errors.push_back({plugin_pos, "'plugin' in [" + tname + "] must be a string naming a " + info.table +
                                      " plugin, found " + describe_node(*p)});
    return std::nullopt;
  }
  return std::string(*p->as_string());
}

/// The error for a plugin name the registry does not hold: the closest name, the known ones, libraries
/// that failed to load, and the directories searched.
/// For an unknown plugin name: the libraries the registry refused at load (wrong SDK ABI, LibTorch, C++
/// ABI, …), any of which may be the one that provides it. Those whose file name contains the plugin's
/// name (`my-aug` → libmy_aug.so) first; when none does, every refused library (three at most).
std::string refused_libraries(const Registry& registry, const std::string& plugin) {
  std::vector<const LoadFailure*> refused, named;
  std::string key = plugin;
  std::replace(key.begin(), key.end(), '-', '_');
  for (const LoadFailure& f : registry.failures()) {
    if (!f.refused) continue;
    refused.push_back(&f);
    std::string file = f.file.filename().string();
    std::replace(file.begin(), file.end(), '-', '_');
    if (!key.empty() && file.find(key) != std::string::npos) named.push_back(&f);
  }
  const auto& shown = named.empty() ? refused : named;
  if (shown.empty()) return "";
  constexpr size_t kMax = 3;
  std::string msg;
  for (size_t i = 0; i < shown.size() && i < kMax; ++i) {
    std::string reason = shown[i]->reason;
    if (!reason.empty() && reason.back() == '.') reason.pop_back();
    msg += "; library " + shown[i]->file.filename().string() + " in " + shown[i]->file.parent_path().string() +
           " was refused: " + reason;
  }
  if (shown.size() > kMax) msg += "; and " + std::to_string(shown.size() - kMax) + " more";
  if (refused.size() > kMax || named.size() < refused.size()) msg += " (`loom plugins` lists every refused library)";
  return msg + ".";
}

std::string unknown_plugin_message(const Registry& registry, const KindInfo& info, const std::string& plugin) {
  const auto names = known_plugins(registry, info.kind);
  std::string msg = "unknown " + info.table + " plugin '" + plugin + "'";
  if (std::string near = closest(plugin, names); !near.empty()) msg += "; did you mean '" + near + "'?";
  msg += " Known " + info.table + " plugins: " + (names.empty() ? std::string("none found") : join(names));
  const auto& searched = registry.searched();
  if (!searched.empty()) {
    msg += ". Searched:";
    for (const auto& dir : searched) msg += " " + dir.string();
  }
  return msg + refused_libraries(registry, plugin);
}

/// An [[augmentation]] table's `pipeline` into choice.pipeline ("default" when it names none).
void read_pipeline(const Config& config, std::vector<ConfigError>& errors, const std::string& tname,
                   const toml::table* t, PluginChoice& choice) {
  choice.pipeline = "default";
  if (const toml::node* p = t ? t->get("pipeline") : nullptr) {
    static const std::regex name_re("[a-z0-9][a-z0-9_-]{0,63}");
    if (!p->is_string() || !std::regex_match(std::string(*p->as_string()), name_re))
      errors.push_back({config.pos_of(tname, "pipeline", *p),
                        "'pipeline' in [" + tname + "] must name a pipeline: lower-case letters, digits, '-' or '_' "
                        "(e.g. \"strong\"), found " + describe_node(*p)});
    else
      choice.pipeline = std::string(*p->as_string());
  }
}

/// One plugin table ([dataset], or one [[callback]] element named `tname`, e.g. "callback[1]"): finds
/// the plugin and validates its parameters. nullopt (with errors recorded) when it cannot.
std::optional<PluginChoice> resolve_plugin(const Config& config, const Registry& registry, TableChecker& checker,
                                           std::vector<ConfigError>& errors, const KindInfo& info,
                                           const std::string& tname, const toml::table* t) {
  SourcePos plugin_pos;
  const std::optional<std::string> plugin = plugin_name_of(config, registry, errors, info, tname, t, plugin_pos);
  if (!plugin) return std::nullopt;
  const Feature* feature = registry.find(info.kind, *plugin);
  if (!feature) {
    errors.push_back({plugin_pos, unknown_plugin_message(registry, info, *plugin)});
    return std::nullopt;
  }
  PluginChoice choice;
  choice.feature = feature;
  choice.table = tname;
  const bool pipelines = info.kind == Kind::Augmentation;
  const bool ids = info.kind == Kind::Callback || info.kind == Kind::MetricSink;  // keyed state (host/state/providers.h)
  choice.params = checker.check(tname, " (plugin '" + *plugin + "')", t, feature->info.params, true,
                                pipelines ? "pipeline" : ids ? "id" : "");
  if (pipelines) read_pipeline(config, errors, tname, t, choice);
  if (const toml::node* p = ids && t ? t->get("id") : nullptr) {
    static const std::regex id_re("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    if (!p->is_string() || !std::regex_match(std::string(*p->as_string()), id_re))
      errors.push_back({config.pos_of(tname, "id", *p),
                        "'id' in [" + tname + "] names this table's state in checkpoints: letters, digits, '-', '_' or '.' "
                        "(at most 64, e.g. \"ema-slow\"), found " + describe_node(*p)});
    else
      choice.id = std::string(*p->as_string());
  }
  return choice;
}

/// [[callback]]: an array of tables, one plugin each, in file order, after the kind's always-present
/// plugin (which a table naming it configures).
void resolve_many_table(const Config& config, const Registry& registry, TableChecker& checker,
                        std::vector<ConfigError>& errors, const KindInfo& info, std::vector<PluginChoice>& list) {
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
  if (!node) return;
  const toml::array* array = node->as_array();
  if (!array || !array->is_array_of_tables()) {
    errors.push_back({top_level_pos(config, info.table, node->source()), "'" + info.table + "' must be an array of tables: write [[" + info.table +
                                                      "]] once per " + info.table + ", each with plugin = \"<name>\""});
    return;
  }
  for (size_t i = 0; i < array->size(); ++i) {
    const std::string element = info.table + "[" + std::to_string(i) + "]";
    auto choice = resolve_plugin(config, registry, checker, errors, info, element, (*array)[i].as_table());
    if (!choice) continue;
    if (!choice->id.empty())
      for (const PluginChoice& other : list)
        if (other.id == choice->id) {
          const toml::node* id = (*array)[i].as_table()->get("id");
          errors.push_back({config.pos_of(element, "id", *id), "id \"" + choice->id + "\" is already used by [" + other.table +
                                                                "]; every [[" + info.table + "]] id must be unique"});
        }
    if (!info.always.empty() && choice->feature->info.name == info.always) {
      list.front().params = std::move(choice->params);  // configures the always-present plugin; no second copy
      list.front().id = std::move(choice->id);
      continue;
    }
    list.push_back(std::move(*choice));
  }
}

}  // namespace

void resolve_plugin_tables(const Config& config, const Registry& registry, TableChecker& checker,
                           std::vector<ConfigError>& errors, ResolvedConfig& out) {
  for (const KindInfo& info : kind_table()) {
    if (info.cardinality == Cardinality::Many) {
      resolve_many_table(config, registry, checker, errors, info, out.plugins[info.kind]);
      continue;
    }
    if (auto choice = resolve_plugin(config, registry, checker, errors, info, info.table,
                                     config.root()[info.table].as_table()))
      out.plugins[info.kind].push_back(std::move(*choice));
  }
}

/// [student_model]: without a `plugin` key (or naming [model]'s plugin) its keys replace [model]'s, so
/// `channels = [64, 128]` alone makes a wider student; naming another model plugin takes only its own keys.
void resolve_student_model(const Config& config, const Registry& registry, TableChecker& checker,
                           std::vector<ConfigError>& errors, ResolvedConfig& out) {
  const toml::table* student = config.root()["student_model"].as_table();
  if (!student) return;
  const auto model = out.plugins.find(Kind::Model);
  if (model == out.plugins.end() || model->second.empty()) return;  // [model]'s own error says what is wrong
  const PluginChoice& main = model->second.front();
  const toml::node* plugin = student->get("plugin");
  if (plugin && plugin->is_string() && std::string(*plugin->as_string()) != main.feature->info.name) {
    if (auto choice = resolve_plugin(config, registry, checker, errors, kind_info(Kind::Model), "student_model", student))
      out.student_model = std::move(*choice);
    return;
  }
  if (plugin && !plugin->is_string()) {
    errors.push_back({config.pos_of("student_model", "plugin", *plugin),
                      "'plugin' in [student_model] must be a string naming a model plugin, found " +
                          describe_node(*plugin)});
    return;
  }
  // [student_model] is checked in place, so each of its errors points at its own line (a merged copy
  // would carry no file positions, and would report [model]'s errors a second time). Its schema is
  // [model]'s with nothing required and no defaults: [model]'s resolved params supply every key it
  // leaves out, and its own values replace those.
  Schema overlay = main.feature->info.params;
  for (ParamSpec& spec : overlay) {
    spec.is_required = false;
    spec.default_value.reset();
  }
  const Params own = checker.check("student_model", " (plugin '" + main.feature->info.name + "', over [model])",
                                   student, overlay, true);
  std::map<std::string, Value> values = main.params.values();
  for (const auto& [k, v] : own.values()) values.insert_or_assign(k, v);
  PluginChoice choice;
  choice.feature = main.feature;
  choice.table = "student_model";
  choice.params = Params(std::move(values));
  out.student_model = std::move(choice);
}

}  // namespace loom::host
