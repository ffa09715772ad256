#include "config/resolve.h"

#include "plugins/kinds_table.h"
#include "config/table_checker.h"

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

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

namespace {


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
    const auto& searched = registry.searched();
    if (!searched.empty()) {
      msg += ". Searched:";
      for (const auto& dir : searched) msg += " " + dir.string();
    }
    msg += refused_libraries(registry, plugin);
    errors.push_back({plugin_pos, msg});
    return std::nullopt;
  }
  PluginChoice choice;
  choice.feature = feature;
  choice.table = tname;
  const bool pipelines = kind == Kind::Augmentation;
  choice.params = checker.check(tname, " (plugin '" + plugin + "')", t, feature->info.params, true,
                                pipelines ? "pipeline" : "");
  if (pipelines) {
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
  return choice;
}

/// Parameters declared with ParamSpec::pipeline_name() must name a pipeline some [[augmentation]] table
/// declares ("default" always exists).
void check_pipeline_names(const Config& config, std::vector<ConfigError>& errors, const ResolvedConfig& out) {
  std::vector<std::string> pipelines = {"default"};
  if (auto it = out.plugins.find(Kind::Augmentation); it != out.plugins.end())
    for (const PluginChoice& op : it->second)
      if (std::find(pipelines.begin(), pipelines.end(), op.pipeline) == pipelines.end()) pipelines.push_back(op.pipeline);
  auto check = [&](const PluginChoice& choice) {
    for (const ParamSpec& spec : choice.feature->info.params) {
      if (!spec.names_pipeline || !choice.params.has(spec.name)) continue;
      const std::string name = choice.params.str(spec.name);
      if (std::find(pipelines.begin(), pipelines.end(), name) != pipelines.end()) continue;
      // The table of a many-kind element is "callback[1]": its node is the array's element.
      const toml::node* table = nullptr;
      if (const auto open = choice.table.find('['); open != std::string::npos) {
        if (const toml::array* a = config.root()[choice.table.substr(0, open)].as_array())
          table = a->get(std::stoul(choice.table.substr(open + 1)));
      } else {
        table = config.root().get(choice.table);
      }
      const toml::node* node = table && table->is_table() ? table->as_table()->get(spec.name) : nullptr;
      errors.push_back({node ? config.pos_of(choice.table, spec.name, *node) : config.pos_of_table(choice.table),
                        "'" + spec.name + "' in [" + choice.table + "] is \"" + name +
                            "\", but no [[augmentation]] table has pipeline = \"" + name + "\" (pipelines: " +
                            join(pipelines) + "); add such tables, or name one of those"});
    }
  };
  for (const auto& [kind, list] : out.plugins)
    for (const PluginChoice& choice : list)
      if (choice.feature) check(choice);
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

  std::vector<std::string> known_tables = {"run", "loader", "optimizer", "lr_schedule", "loss", "student_model"};
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
  out.loss = checker.check("loss", "", table("loss"), loss_schema(), false);
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

  resolve_student_model(config, registry, checker, errors, out);
  check_pipeline_names(config, errors, out);

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
