// resolve()'s checks across tables: what one table names that another must declare or provide.
#include "config/resolve_steps.h"

#include <algorithm>

namespace loom::host {

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

void check_test_on(const Config& config, std::vector<ConfigError>& errors, const ResolvedConfig& out) {
  // A run refuses test_on = "best" unless a callback keeps a best model; without any [[callback]] none
  // can, and check should say so rather than pass a config the run rejects.
  if (out.run.has("test_on") && out.run.str("test_on") == "best" && !config.root().get("callback")) {
    const toml::table* run = config.root()["run"].as_table();
    const toml::node* n = run ? run->get("test_on") : nullptr;
    errors.push_back({n ? config.pos_of("run", "test_on", *n) : config.pos_of_table("run"),
                      "'test_on' in [run] is \"best\", which needs a [[callback]] that keeps a best model (e.g. "
                      "plugin = \"best-checkpoint\"); add one, or set test_on = \"last\""});
  }
}

}  // namespace loom::host
