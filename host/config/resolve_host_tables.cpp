// resolve()'s top-level and host tables: which tables a config may have, and [run], [loader],
// [optimizer], [lr_schedule], [loss] with the checks their schemas cannot say.
#include "config/resolve_steps.h"

#include "plugins/kinds.h"

#include <algorithm>
#include <regex>

namespace loom::host {

namespace fs = std::filesystem;

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

bool valid_device(const std::string& d) {
  static const std::regex re("auto|cpu|cuda(:[0-9]+)?");
  return std::regex_match(d, re);
}

}  // namespace

SourcePos top_level_pos(const Config& config, const std::string& name, const toml::source_region& region) {
  SourcePos where = config.pos(region);
  if (where.line != 0) return where;
  if (const toml::table* t = config.root()[name].as_table())
    for (auto&& [k, v] : *t)
      if (config.overridden(name, std::string(k.str()))) return config.pos_of(name, std::string(k.str()), v);
  return config.pos_of_table(name);
}

void check_top_level_tables(const Config& config, std::vector<ConfigError>& errors) {
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
}

void resolve_host_tables(const Config& config, TableChecker& checker, std::vector<ConfigError>& errors,
                         ResolvedConfig& out) {
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
}

}  // namespace loom::host
