#include "config.h"

#include <sstream>

namespace loom::host {

std::string SourcePos::str() const {
  if (!override_expr.empty()) return "--set " + override_expr;
  std::ostringstream out;
  out << file;
  if (line > 0) out << ':' << line << ':' << (column > 0 ? column : 1);
  return out.str();
}

static std::string join_errors(const std::vector<ConfigError>& errors) {
  std::string text;
  for (const auto& e : errors) text += e.str() + "\n";
  return text;
}

ConfigErrors::ConfigErrors(std::vector<ConfigError> errors)
    : std::runtime_error(join_errors(errors)), errors_(std::move(errors)) {}

Config Config::load(const std::filesystem::path& file) {
  Config config;
  config.file_ = file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw ConfigErrors({{SourcePos{file.string()},
                         "cannot read the config file (no such file); pass the path of a .toml file, e.g. "
                         "configs/quickstart.toml"}});
  }
  try {
    config.root_ = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    SourcePos p{file.string(), e.source().begin.line, e.source().begin.column};
    throw ConfigErrors({{p, "TOML syntax error: " + std::string(e.description())}});
  }
  return config;
}

void Config::apply_override(const std::string& expr, std::vector<ConfigError>& errors) {
  SourcePos here;
  here.override_expr = expr;
  const auto eq = expr.find('=');
  const std::string path = eq == std::string::npos ? expr : expr.substr(0, eq);
  const auto dot = path.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 == path.size() ||
      path.find('.', dot + 1) != std::string::npos) {
    errors.push_back({here, "expected section.key=value, e.g. --set accumulation.steps=8"});
    return;
  }
  const std::string table = path.substr(0, dot), key = path.substr(dot + 1), text = expr.substr(eq + 1);
  toml::node_view<toml::node> existing = root_[table];
  if (existing && !existing.is_table()) {
    errors.push_back({here, "'" + table + "' is not a table in the config"});
    return;
  }
  if (!existing) root_.insert(table, toml::table{});
  toml::table& t = *root_[table].as_table();
  try {
    toml::table parsed = toml::parse("v = " + text);
    t.insert_or_assign(key, *parsed["v"].node());
  } catch (const toml::parse_error&) {
    t.insert_or_assign(key, text);  // not a TOML value: take it as a string
  }
  overrides_[path] = expr;
}

SourcePos Config::pos(const toml::source_region& region) const {
  return SourcePos{file_.string(), region.begin.line, region.begin.column};
}

SourcePos Config::pos_of(const std::string& table, const std::string& key, const toml::node& value) const {
  auto it = overrides_.find(table + "." + key);
  if (it != overrides_.end()) {
    SourcePos p;
    p.override_expr = it->second;
    return p;
  }
  return pos(value.source());
}

SourcePos Config::pos_of_table(const std::string& table) const {
  if (const toml::table* t = root_[table].as_table(); t && t->source().begin.line > 0) return pos(t->source());
  return SourcePos{file_.string(), 1, 1};
}

bool Config::overridden(const std::string& table, const std::string& key) const {
  return overrides_.count(table + "." + key) != 0;
}

}  // namespace loom::host
