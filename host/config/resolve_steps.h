// The steps of resolve() (resolve.cpp), one file per concern: the top-level and host tables
// (resolve_host_tables.cpp), the plugin tables and [student_model] (resolve_plugins.cpp), and the checks
// across tables (resolve_checks.cpp). Each appends its errors; none throws for a config's mistake.
#pragma once

#include "config/config.h"
#include "config/resolve.h"
#include "config/table_checker.h"
#include "plugins/registry.h"

#include <string>
#include <vector>

namespace loom::host {

/// Where a top-level table is: its place in the file, or, for a table only --set created (which has
/// none), the first --set expression that wrote into it.
SourcePos top_level_pos(const Config& config, const std::string& name, const toml::source_region& region);

/// Every top-level key names a known table, and holds a table (or, for a many-kind, an array of them).
void check_top_level_tables(const Config& config, std::vector<ConfigError>& errors);

/// [run], [loader], [optimizer], [lr_schedule], [loss] into `out`, with the checks their schemas cannot say.
void resolve_host_tables(const Config& config, TableChecker& checker, std::vector<ConfigError>& errors,
                         ResolvedConfig& out);

/// Every kind's plugin table(s), in the kinds table's order, into out.plugins.
void resolve_plugin_tables(const Config& config, const Registry& registry, TableChecker& checker,
                           std::vector<ConfigError>& errors, ResolvedConfig& out);

/// [student_model] into out.student_model (after [model] is resolved).
void resolve_student_model(const Config& config, const Registry& registry, TableChecker& checker,
                           std::vector<ConfigError>& errors, ResolvedConfig& out);

/// Parameters declared with ParamSpec::pipeline_name() must name a pipeline some [[augmentation]] table
/// declares ("default" always exists).
void check_pipeline_names(const Config& config, std::vector<ConfigError>& errors, const ResolvedConfig& out);

/// [run] test_on = "best" needs a [[callback]] that can keep a best model.
void check_test_on(const Config& config, std::vector<ConfigError>& errors, const ResolvedConfig& out);

}  // namespace loom::host
