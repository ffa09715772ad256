// Validation: every table of a config against its schema, all errors at once, nothing created.
// The result is a ResolvedConfig: every value typed and defaulted, every plugin found in the registry.
#pragma once

#include "config/config.h"
#include "plugins/kinds.h"
#include "plugins/registry.h"

#include <loom/kinds.h>
#include <loom/params.h>

#include <map>
#include <string>
#include <vector>

namespace loom::host {

/// Schemas of the host's own tables: run, loader, optimizer, lr_schedule, loss.
const Schema& run_schema();
const Schema& loader_schema();
const Schema& optimizer_schema();
const Schema& lr_schedule_schema();
const Schema& loss_schema();

/// The plugin a missing table means ("" when the table is required).
std::string neutral_plugin(Kind kind);

struct PluginChoice {
  const Feature* feature = nullptr;
  Params params;
  std::string pipeline;  ///< augmentation only: the table's `pipeline` ("default" when it names none)
  std::string id;        ///< [[callback]] / [[metric_sink]] only: the table's `id` ("" when it has none), its checkpoint key
  std::string table;     ///< where it was configured: "dataset", "callback[1]", "student_model", …
};

struct ResolvedConfig {
  std::filesystem::path file;
  Params run, loader, optimizer, lr_schedule, loss;
  /// Per kind, in file order: exactly one for kinds of Cardinality::One (plugins/kinds.h, from the SDK's KindTraits), any number for
  /// the others (the always-present plugin first).
  std::map<Kind, std::vector<PluginChoice>> plugins;
  /// [student_model]: the model self-training students are created from (TrainerServices::
  /// create_student_model); its keys replace [model]'s, or it names another model plugin. nullopt: none.
  std::optional<PluginChoice> student_model;

  /// The plugin of a one-per-run kind.
  const PluginChoice& one(Kind kind) const;
  /// The plugins of a many-per-run kind (empty when none are configured).
  const std::vector<PluginChoice>& many(Kind kind) const;

  /// The resolved config as TOML (defaults filled in, paths absolute): config.resolved.toml.
  toml::table to_toml() const;
};

/// Reads [run] plugin_paths (resolved against the config's directory) before the registry exists.
/// Errors in it are reported again, with all others, by resolve().
std::vector<std::filesystem::path> early_plugin_paths(const Config& config);

/// Validates the whole config. Throws ConfigErrors listing every problem with its position.
ResolvedConfig resolve(const Config& config, const Registry& registry);

/// Whether `table` is the TOML table of a kind that takes many plugins ([[callback]]).
bool is_many_table(const std::string& table);
/// The kind whose TOML table is `table`.
const KindInfo& kind_info_by_table(const std::string& table);

/// Closest candidate by edit distance, or "" when nothing is reasonably close.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace loom::host
