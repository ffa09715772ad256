#include "config/resolve.h"

#include "config/resolve_steps.h"
#include "config/table_checker.h"
#include "plugins/kinds.h"

#include <algorithm>
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

  check_top_level_tables(config, errors);
  resolve_host_tables(config, checker, errors, out);
  resolve_plugin_tables(config, registry, checker, errors, out);
  resolve_student_model(config, registry, checker, errors, out);
  check_pipeline_names(config, errors, out);
  check_test_on(config, errors, out);

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
