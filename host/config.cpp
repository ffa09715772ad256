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

std::optional<std::pair<std::string, size_t>> parse_element(const std::string& name) {
  const auto open = name.find('[');
  if (open == std::string::npos || open == 0 || name.back() != ']' || open + 2 > name.size() - 1) return std::nullopt;
  const std::string digits = name.substr(open + 1, name.size() - open - 2);
  if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::make_pair(name.substr(0, open), static_cast<size_t>(std::stoul(digits)));
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
  toml::table* target = nullptr;
  if (auto element = parse_element(table)) {
    // callback[1].decay=0.99: the second [[callback]]; callback[N] with N = the count appends one.
    auto& [array_name, index] = *element;
    toml::node* node = root_.get(array_name);
    if (!node) node = &root_.insert_or_assign(array_name, toml::array{}).first->second;
    toml::array* array = node->as_array();
    if (!array || (!array->empty() && !array->is_array_of_tables())) {
      errors.push_back({here, "'" + array_name + "' is not an array of tables ([[" + array_name + "]]) in the config"});
      return;
    }
    if (index > array->size()) {
      errors.push_back({here, "the config has " + std::to_string(array->size()) + " [[" + array_name + "]] table(s); " +
                                  table + " must be one of them (0-based) or the next, " + array_name + "[" +
                                  std::to_string(array->size()) + "], to add one"});
      return;
    }
    if (index == array->size()) array->push_back(toml::table{});
    target = (*array)[index].as_table();
  } else {
    toml::node_view<toml::node> existing = root_[table];
    if (existing && !existing.is_table()) {
      errors.push_back({here, "'" + table + "' is not a table in the config" +
                                  (existing.is_array() ? "; address one of its [[" + table + "]] tables as " + table + "[0]." + key
                                                       : std::string())});
      return;
    }
    if (!existing) root_.insert(table, toml::table{});
    target = root_[table].as_table();
  }
  toml::table& t = *target;
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

const toml::table* Config::table(const std::string& name) const {
  if (auto element = parse_element(name)) {
    const toml::array* array = root_[element->first].as_array();
    return array && element->second < array->size() ? (*array)[element->second].as_table() : nullptr;
  }
  return root_[name].as_table();
}

SourcePos Config::pos_of_table(const std::string& table) const {
  if (const toml::table* t = this->table(table); t && t->source().begin.line > 0) return pos(t->source());
  return SourcePos{file_.string(), 1, 1};
}

bool Config::overridden(const std::string& table, const std::string& key) const {
  return overrides_.count(table + "." + key) != 0;
}

}  // namespace loom::host
