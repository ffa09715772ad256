// TableChecker: validates one TOML table against a schema (types, ranges, choices, paths, UTF-8),
// appending every error with its position, and returns the defaulted Params. Used by resolve() for the
// host's tables and every plugin table.
#pragma once

#include "config/config.h"
#include "config/error_text.h"
#include "config/resolve.h"

#include <loom/params.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace loom::host {

/// Validates one table against a schema; appends errors; returns the defaulted Params.
class TableChecker {
 public:
  TableChecker(const Config& config, std::vector<ConfigError>& errors) : config_(config), errors_(errors) {}

  /// `host_key`: a key besides `plugin` that the host reads from this table itself (augmentation's
  /// `pipeline`), skipped here.
  Params check(const std::string& table_name, const std::string& what, const toml::table* table, const Schema& schema,
               bool has_plugin_key, const std::string& host_key = {});

 private:
  /// A key of the table that the schema removed or never had: the error, and true; false for a key it knows.
  bool refuse_key(const std::string& table_name, const std::string& what, const Schema& schema,
                  const std::vector<std::string>& names, const toml::key& key, const toml::node& node);
  /// The schema's keys the table leaves out: their defaults, or an error for a required one.
  void fill_defaults(const std::string& table_name, const std::string& what, const Schema& schema,
                     std::map<std::string, Value>& values);

  /// The directory --set paths and defaults resolve against; "" (with the error recorded) when the
  /// working directory is gone.
  std::filesystem::path working_dir(const SourcePos& p);

  /// The config file's directory, absolute; "" (with the error recorded) when it cannot be made so.
  std::filesystem::path config_dir(const SourcePos& p);

  /// `p` made absolute against `base` and normalized, or nullopt with the error recorded. Every file
  /// system call takes an error_code: a path the file system refuses (too long, a loop of links, no
  /// permission) is the user's input, and must come back as an error at its position, not as an
  /// exception that ends the program.
  std::optional<std::string> resolve_path(const std::string& p, const std::filesystem::path& base, const SourcePos& pos,
                                          const std::string& where);
  /// The lengths resolve_path allows: the whole path, and each name in it.
  bool check_path_lengths(const std::filesystem::path& path, const SourcePos& pos, const std::string& where);

  void error(const SourcePos& p, std::string msg) { errors_.push_back({p, std::move(msg)}); }

  /// TOML files are UTF-8 (toml++ checks), but a --set value is whatever bytes the shell passed; a string
  /// that is not UTF-8 would pass here and fail later, when a run writes it into JSON.
  bool valid_utf8(const SourcePos& p, const std::string& where, const std::string& s);

  bool check_range(const SourcePos& p, const std::string& where, const ParamSpec& spec, double v);

  /// `node` as `spec`'s type, or nullopt with the error recorded.
  std::optional<Value> convert(const std::string& table, const std::string& what, const ParamSpec& spec,
                               const toml::node& node);
  std::optional<Value> convert_string(const std::string& table, const ParamSpec& spec, const toml::node& node,
                                      const SourcePos& p, const std::string& where);
  std::optional<Value> convert_int_map(const ParamSpec& spec, const toml::node& node, const SourcePos& p,
                                       const std::string& where);
  std::optional<Value> convert_list(const std::string& table, const ParamSpec& spec, const toml::node& node,
                                    const SourcePos& p, const std::string& where);
  /// Records "<where> must be <expected>, found <node>".
  std::nullopt_t wrong_type(const SourcePos& p, const std::string& where, const std::string& expected,
                            const toml::node& node);

  const Config& config_;
  std::vector<ConfigError>& errors_;
};

}  // namespace loom::host
