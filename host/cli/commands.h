// The `loom` subcommands. Each returns the process exit status:
//   0 ok, 1 runtime failure, 2 rejected config or bad usage, 130 interrupted by SIGINT or 143 by SIGTERM
//   (checkpoint written; 128 + the signal, as a shell reports it).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace loom::host {

struct RunOptions {
  std::filesystem::path config;
  std::vector<std::string> overrides;
  std::filesystem::path resume;  ///< a run directory to continue; empty for a new run
  bool verbose = false;
};

struct CacheOptions {
  std::string action;              ///< build | info | clear
  std::filesystem::path target;    ///< CONFIG (build, clear) or DIR (info, clear)
  std::vector<std::string> overrides;
  bool verbose = false;
};

int run_command(const RunOptions& options);
int cache_command(const CacheOptions& options);
int check_command(const std::filesystem::path& config, const std::vector<std::string>& overrides, bool deep = false);
int plugins_command(const std::string& name, bool json);

}  // namespace loom::host
