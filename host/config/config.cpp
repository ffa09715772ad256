#include "config/config.h"
#include "config/toml_depth_guard.h"

#include <loom/io.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace loom::host {

namespace {

/// The longest sequence of valid UTF-8 at `s[i]`: its length, or 0 for an invalid byte there.
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid too.
  if (len == 2 && c < 0xC2) return 0;
  if (len == 3 && ((c == 0xE0 && b(i + 1) < 0xA0) || (c == 0xED && b(i + 1) >= 0xA0))) return 0;
  if (len == 4 && ((c == 0xF0 && b(i + 1) < 0x90) || (c == 0xF4 && b(i + 1) >= 0x90) || c > 0xF4)) return 0;
  return len;
}

/// `text` as one printable line of valid UTF-8 of at most about `max_bytes`: a value from the config or
/// the command line may hold newlines, control characters or invalid UTF-8, and an error line that
/// printed them raw would break into several lines (or break the terminal) instead of naming the problem.
std::string printable(std::string_view text, size_t max_bytes) {
  std::string out;
  char hex[8];
  for (size_t i = 0; i < text.size();) {
    if (out.size() >= max_bytes) {
      out += "… (" + std::to_string(text.size()) + " bytes in all)";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t len = utf8_sequence(text, i);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (len == 0 || c < 0x20 || c == 0x7F) {
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    } else {
      out.append(text.substr(i, len));
      i += len;
      continue;
    }
    ++i;
  }
  return out;
}

}  // namespace

std::optional<size_t> invalid_utf8_at(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_sequence(text, i);
    if (len == 0) return i;
    i += len;
  }
  return std::nullopt;
}

std::string SourcePos::str() const {
  // A --set value may be as long as the command line allows; the error needs only its start.
  if (!override_expr.empty()) return "--set " + printable(override_expr, 200);
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

/// Makes every error one printable line, in place: messages quote values from the config and the
/// command line, which may hold anything. Returns `errors` so the base class sees the result.
static const std::vector<ConfigError>& make_printable(std::vector<ConfigError>& errors) {
  for (auto& e : errors) {
    e.pos.file = printable(e.pos.file, 4096);
    e.message = printable(e.message, 4096);
  }
  return errors;
}

ConfigErrors::ConfigErrors(std::vector<ConfigError> errors)
    : std::runtime_error(join_errors(make_printable(errors))), errors_(std::move(errors)) {}


Config Config::load(const std::filesystem::path& file) {
  Config config;
  config.file_ = file;
  const SourcePos whole{file.string()};
  // One byte past the limit tells a file that is too large; a stray multi-gigabyte file is never read whole.
  // A FIFO, a device or a directory (or a symlink to one) is refused before the first read (Loom::io).
  std::string content(kMaxConfigBytes + 1, '\0');
  try {
    io::InputFile in(file);
    content.resize(in.read(content.data(), content.size()));
  } catch (const io::Error& e) {
    std::error_code ec;
    const bool missing = !std::filesystem::exists(std::filesystem::symlink_status(file, ec));
    throw ConfigErrors({{whole, "cannot read the config file (" + (missing ? std::string("no such file") : std::string(e.what())) +
                                    "); pass the path of a .toml file, e.g. configs/quickstart.toml"}});
  }
  if (content.size() > kMaxConfigBytes) {
    SourcePos at{file.string(), 1, 1};
    for (size_t k = 0; k < kMaxConfigBytes; ++k) {
      if (content[k] == '\n') ++at.line, at.column = 1;
      else ++at.column;
    }
    throw ConfigErrors({{at, "the config file is larger than " + std::to_string(kMaxConfigBytes) +
                                 " bytes (1 MiB), the most a config may be; this is its byte " +
                                 std::to_string(kMaxConfigBytes + 1)}});
  }
  if (auto deep = DepthGuard(content).scan())
    throw ConfigErrors({{SourcePos{file.string(), deep->line, deep->column}, "TOML too deep: " + deep->message}});
  try {
    config.root_ = toml::parse(content, file.string());
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
  // The value is parsed as the TOML line "v = <text>": a newline would let it carry more lines (tables,
  // keys) that the parse accepts and the override then silently drops.
  if (text.find_first_of("\n\r") != std::string::npos) {
    errors.push_back({here, "a --set value must be one TOML value on one line; multi-line values are not allowed"});
    return;
  }
  const std::string line = "v = " + text;
  if (auto deep = DepthGuard(line).scan()) {
    errors.push_back({here, "TOML too deep: " + deep->message});
    return;
  }
  std::optional<toml::table> parsed;
  try {
    parsed = toml::parse(line, std::string("--set"));
  } catch (const toml::parse_error&) {
    // not a TOML value: taken as a string below
  }
  if (parsed && (parsed->size() != 1 || !parsed->contains("v"))) {
    errors.push_back({here, "a --set value must be one TOML value; found more after it"});
    return;
  }
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
  if (parsed) t.insert_or_assign(key, *parsed->get("v"));
  else t.insert_or_assign(key, text);  // not a TOML value: take it as a string
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
