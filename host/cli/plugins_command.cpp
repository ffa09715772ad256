// `loom plugins [NAME] [--json]`: what was found, each feature's schema (like gst-inspect), and every
// library that was refused, with the reason.
#include "cli/commands.h"
#include "plugins/kinds.h"
#include "plugins/registry.h"
#include "config/resolve.h"

#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>

namespace loom::host {

namespace {

nlohmann::json value_json(const Value& v) {
  return std::visit(
      [](const auto& x) {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, IntMap>) {
          nlohmann::json j = nlohmann::json::object();  // keys as strings, as in TOML
          for (const auto& [k, value] : x) j[std::to_string(k)] = value;
          return j;
        } else {
          return nlohmann::json(x);
        }
      },
      v);
}

std::string value_text(const Value& v) {
  nlohmann::json j = value_json(v);
  return j.dump();
}

nlohmann::json spec_json(const ParamSpec& s) {
  nlohmann::json j;
  j["name"] = s.name;
  j["type"] = to_string(s.type);
  j["required"] = s.is_required;
  j["default"] = s.default_value ? value_json(*s.default_value) : nlohmann::json(nullptr);
  j["min"] = s.min ? nlohmann::json(*s.min) : nlohmann::json(nullptr);
  j["max"] = s.max ? nlohmann::json(*s.max) : nlohmann::json(nullptr);
  j["choices"] = s.choices;
  j["doc"] = s.help;
  return j;
}

nlohmann::json feature_json(const Feature& f) {
  nlohmann::json j;
  j["kind"] = std::string(to_string(f.info.kind));
  j["name"] = f.info.name;
  j["version"] = f.info.version;
  j["summary"] = f.info.summary;
  j["library"] = f.library->name();
  j["library_version"] = f.library->version();
  j["file"] = f.library->file.string();
  j["params"] = nlohmann::json::array();
  for (const auto& p : f.info.params)
    if (!p.is_removed()) j["params"].push_back(spec_json(p));
  return j;
}

std::string constraint(const ParamSpec& s) {
  std::ostringstream o;
  if (!s.choices.empty()) {
    for (size_t i = 0; i < s.choices.size(); ++i) o << (i ? "|" : "") << s.choices[i];
  } else if (s.min && s.max) {
    o << '[' << *s.min << ", " << *s.max << ']';
  } else if (s.min) {
    o << ">= " << *s.min;
  } else if (s.max) {
    o << "<= " << *s.max;
  }
  return o.str();
}

void print_schema(const std::string& table, const Schema& schema, std::ostream& out) {
  if (schema.empty()) {
    out << "  (no parameters)\n";
    return;
  }
  for (const auto& s : schema) {
    if (s.is_removed()) continue;
    out << "  " << std::left << std::setw(20) << s.name << std::setw(12) << to_string(s.type)
        << std::setw(22) << (s.is_required ? std::string("required") : s.default_value ? "= " + value_text(*s.default_value) : std::string("(unset)"))
        << std::setw(18) << constraint(s);
    // A long constraint (e.g. a list of choices) gets its own column width and one space before the doc.
    if (constraint(s).size() >= 18) out << ' ';
    out << s.help << '\n';
  }
  (void)table;
}

void print_feature(const Feature& f, std::ostream& out) {
  out << to_string(f.info.kind) << " plugin '" << f.info.name << "' " << f.info.version << " — " << f.info.summary
      << "\n  library: " << f.library->name() << ' ' << f.library->version() << " (" << f.library->file.string()
      << ")\n  TOML: " << (kind_info(f.info.kind).cardinality == Cardinality::Many ? "[[" : "[") << kind_info(f.info.kind).table
      << (kind_info(f.info.kind).cardinality == Cardinality::Many ? "]]" : "]") << " plugin = \"" << f.info.name << "\"\n\n";
  print_schema(std::string(to_string(f.info.kind)), f.info.params, out);
}

/// The NAME of a NAME or KIND/NAME argument.
std::string plugin_name_part(const std::string& name) {
  const auto slash = name.find('/');
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

/// The features `name` selects: all for "", else those named NAME (or KIND/NAME).
std::vector<const Feature*> select_plugins(const Registry& registry, const std::string& name) {
  std::vector<const Feature*> selected;
  const auto slash = name.find('/');
  const std::string kind_filter = slash == std::string::npos ? std::string() : name.substr(0, slash);
  const std::string name_filter = plugin_name_part(name);
  for (Kind k : kAllKinds)
    for (const Feature* f : registry.features(k))
      if (name.empty() || (f->info.name == name_filter && (kind_filter.empty() || kind_filter == to_string(k))))
        selected.push_back(f);
  return selected;
}

/// `loom plugins [NAME] --json`: the search path, the selected plugins, the failures and (without a
/// name) the built-in tables' schemas.
nlohmann::json plugins_json(const Registry& registry, const std::vector<const Feature*>& selected, bool all) {
  nlohmann::json j;
  j["search_path"] = nlohmann::json::array();
  for (const auto& d : registry.searched()) j["search_path"].push_back(d.string());
  j["plugins"] = nlohmann::json::array();
  for (const Feature* f : selected) j["plugins"].push_back(feature_json(*f));
  j["failures"] = nlohmann::json::array();
  for (const auto& f : registry.failures()) j["failures"].push_back({{"file", f.file.string()}, {"reason", f.reason}});
  if (all) {
    j["builtin_tables"] = nlohmann::json::object();
    const std::pair<const char*, const Schema*> tables[] = {
        {"run", &run_schema()}, {"loader", &loader_schema()}, {"optimizer", &optimizer_schema()}, {"lr_schedule", &lr_schedule_schema()},
        {"loss", &loss_schema()}};
    for (const auto& [t, s] : tables) {
      j["builtin_tables"][t] = nlohmann::json::array();
      for (const auto& p : *s) j["builtin_tables"][t].push_back(spec_json(p));
    }
  }
  return j;
}

/// `loom plugins NAME`: each selected plugin with its parameters, or (none selected) what was searched.
int print_named_plugins(const Registry& registry, const std::vector<const Feature*>& selected,
                        const std::string& name) {
  if (selected.empty()) {
    std::vector<std::string> all;
    for (const auto& f : registry.all()) all.push_back(f->info.name);
    std::cerr << "loom: no plugin named '" << name << "'";
    if (std::string near = closest(plugin_name_part(name), all); !near.empty()) std::cerr << "; did you mean '" << near << "'?";
    std::cerr << " (`loom plugins` lists them all)\n";
    std::cerr << "Searched:";
    for (const auto& d : registry.searched()) std::cerr << " " << d.string();
    std::cerr << "\n";
    for (const auto& d : registry.missing()) std::cerr << "Missing plugin directory (skipped): " << d.string() << "\n";
    for (const auto& f : registry.failures()) std::cerr << "Refused: " << f.file.string() << ": " << f.reason << "\n";
    return 1;
  }
  for (const Feature* f : selected) {
    print_feature(*f, std::cout);
    std::cout << '\n';
  }
  if (!registry.failures().empty()) {
    std::cout << "Libraries that failed to load (their plugins are not listed):\n";
    for (const auto& f : registry.failures()) std::cout << "  " << f.file.string() << ": " << f.reason << '\n';
  }
  return 0;
}

/// `loom plugins`: the search path, every plugin by kind, the failures.
void print_plugin_list(const Registry& registry) {
  std::cout << "Plugin search path:\n";
  for (const auto& d : registry.searched()) std::cout << "  " << d.string() << '\n';
  for (const auto& d : registry.missing()) std::cout << "  " << d.string() << "  (does not exist; skipped)\n";
  for (Kind k : kAllKinds) {
    std::cout << '\n' << to_string(k) << ":\n";
    auto features = registry.features(k);
    if (features.empty()) std::cout << "  (none found)\n";
    for (const Feature* f : features)
      std::cout << "  " << std::left << std::setw(18) << f->info.name << std::setw(8) << f->info.version << f->info.summary
                << "  [" << f->library->file.filename().string() << "]\n";
  }
  std::cout << "\nBuilt-in tables: [run], [loader], [optimizer], [lr_schedule] (see docs/config-reference.md)\n";
  if (!registry.failures().empty()) {
    std::cout << "\nLibraries that failed to load:\n";
    for (const auto& f : registry.failures()) std::cout << "  " << f.file.string() << ": " << f.reason << '\n';
  }
  std::cout << "\n`loom plugins NAME` (or KIND/NAME) shows a plugin's parameters; --json for tools.\n";
}

}  // namespace

int plugins_command(const std::string& name, bool json) {
  Registry registry;
  registry.scan(plugin_search_path({}));
  const std::vector<const Feature*> selected = select_plugins(registry, name);
  if (json) {
    std::cout << plugins_json(registry, selected, name.empty()).dump(2) << '\n';
    return name.empty() || !selected.empty() ? 0 : 1;
  }
  if (!name.empty()) return print_named_plugins(registry, selected, name);
  print_plugin_list(registry);
  return 0;
}

}  // namespace loom::host
