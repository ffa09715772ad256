// A parsed config file plus its --set overrides, with source positions for every error.
#pragma once

#include <toml++/toml.h>

#include <filesystem>
#include <map>
#include <optional>
#include <utility>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace loom::host {

/// Where a value came from: "file:line:col", or "--set key=value" for overrides.
struct SourcePos {
  std::string file;
  int64_t line = 0;
  int64_t column = 0;
  std::string override_expr;  ///< set when the value came from --set

  std::string str() const;
};

struct ConfigError {
  SourcePos pos;
  std::string message;
  std::string str() const { return pos.str() + ": error: " + message; }
};

/// All errors found in a config. Thrown only after the whole config was checked.
class ConfigErrors : public std::runtime_error {
 public:
  explicit ConfigErrors(std::vector<ConfigError> errors);
  const std::vector<ConfigError>& errors() const { return errors_; }

 private:
  std::vector<ConfigError> errors_;
};

/// The offset of the first byte of `text` that is not valid UTF-8; nullopt when all of it is.
std::optional<size_t> invalid_utf8_at(std::string_view text);

/// "callback[2]" → ("callback", 2); nullopt for a plain table name.
std::optional<std::pair<std::string, size_t>> parse_element(const std::string& name);

class Config {
 public:
  /// Parses `file`. Throws ConfigErrors (with line:col) on a TOML syntax error or an unreadable file.
  static Config load(const std::filesystem::path& file);

  /// Applies `section.key=value`; value is read as a TOML value, or as a string if it is not one
  /// (so --set dataset.root=/data works without quotes). Collects malformed expressions as errors.
  void apply_override(const std::string& expr, std::vector<ConfigError>& errors);

  const toml::table& root() const { return root_; }
  /// A table by name: "dataset", or "callback[1]" for the second [[callback]]; nullptr when absent.
  const toml::table* table(const std::string& name) const;
  const std::filesystem::path& file() const { return file_; }
  /// The directory relative paths in the file resolve against ("." for a bare file name).
  std::filesystem::path dir() const { return file_.has_parent_path() ? file_.parent_path() : std::filesystem::path("."); }

  SourcePos pos(const toml::source_region& region) const;
  /// Position of a key (its value's position; the override when --set replaced it).
  SourcePos pos_of(const std::string& table, const std::string& key, const toml::node& value) const;
  /// Position of a table header ("file:1:1" when the table is absent).
  SourcePos pos_of_table(const std::string& table) const;
  /// Whether the value at table.key came from --set (relative paths then resolve against the CWD).
  bool overridden(const std::string& table, const std::string& key) const;

 private:
  std::filesystem::path file_;
  toml::table root_;
  std::map<std::string, std::string> overrides_;  // "table.key" -> the --set expression
};

}  // namespace loom::host
