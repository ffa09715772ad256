// loom — the host program. Orchestrates; every technique lives in a plugin.
#include "cli/commands.h"
#include "plugins/plugin_guard.h"

#include <loom/abi.h>

#include <CLI/CLI.hpp>

#include <iostream>

#include <malloc.h>

namespace {

int run_main(int argc, char** argv) {
  CLI::App app{"loom — a plugin-based neural-network trainer (LibTorch)"};
  app.set_version_flag("--version", std::string("loom ") + LOOM_SDK_VERSION + " (plugin ABI " +
                                        std::to_string(LOOM_ABI_VERSION) + ")");
  app.require_subcommand(1);

  loom::host::RunOptions run;
  std::string run_config;
  auto* run_cmd = app.add_subcommand("run", "train as the config says");
  run_cmd->add_option("config", run_config, "TOML config file (omit with --resume)");
  run_cmd->add_option("--set", run.overrides, "override a value: section.key=value (repeatable)");
  run_cmd->add_option("--resume", run.resume, "continue the run in this run directory from its checkpoint");
  run_cmd->add_flag("-v,--verbose", run.verbose, "debug logging");

  std::string check_config;
  std::vector<std::string> check_overrides;
  auto* check_cmd = app.add_subcommand("check", "validate a config; creates nothing");
  check_cmd->add_option("config", check_config, "TOML config file")->required();
  check_cmd->add_option("--set", check_overrides, "override a value: section.key=value (repeatable)");
  bool check_deep = false;
  check_cmd->add_flag("--deep", check_deep, "also create every plugin (reads the data; builds no cache, writes nothing)");

  std::string plugin_name;
  bool json = false;
  auto* plugins_cmd = app.add_subcommand("plugins", "list plugins, or show one plugin's parameters");
  plugins_cmd->add_option("name", plugin_name, "a plugin name, or KIND/NAME");
  plugins_cmd->add_flag("--json", json, "machine-readable output");

  loom::host::CacheOptions cache;
  auto* cache_cmd = app.add_subcommand("cache", "prepare, explain or remove on-disk caches");
  cache_cmd->require_subcommand(1);
  auto* cache_build = cache_cmd->add_subcommand("build", "build the cache a config's run would use, without training");
  cache_build->add_option("config", cache.target, "TOML config file")->required();
  cache_build->add_option("--set", cache.overrides, "override a value: section.key=value (repeatable)");
  cache_build->add_flag("-v,--verbose", cache.verbose, "debug logging");
  auto* cache_info = cache_cmd->add_subcommand("info", "explain a cache directory (or every cache under a root)");
  cache_info->add_option("dir", cache.target, "cache directory or cache root")->required();
  auto* cache_clear = cache_cmd->add_subcommand("clear", "remove a config's cache, or a cache directory");
  cache_clear->add_option("target", cache.target, "TOML config file, cache directory or cache root")->required();
  cache_clear->add_option("--set", cache.overrides, "override a value (with a CONFIG)");

  CLI11_PARSE(app, argc, argv);

  if (*run_cmd) {
    if (run_config.empty() == run.resume.empty()) {
      std::cerr << "loom run: pass a CONFIG file to start a run, or --resume RUN_DIR to continue one\n";
      return 2;
    }
    run.config = run_config;
    return loom::host::run_command(run);
  }
  if (*check_cmd) return loom::host::check_command(check_config, check_overrides, check_deep);
  if (*cache_cmd) {
    for (const auto* sub : {cache_build, cache_info, cache_clear})
      if (*sub) cache.action = sub->get_name();
    return loom::host::cache_command(cache);
  }
  return loom::host::plugins_command(plugin_name, json);
}

}  // namespace

// The last line of defence: whatever escaped a command is reported as one clear line (no LibTorch
// backtrace) with exit status 1, never std::terminate.
int main(int argc, char** argv) {
  // A training step frees and reallocates the same activation-sized blocks (MBs each) every step. With
  // glibc's defaults many of them are mmap'ed and unmapped, or trimmed back to the OS, each time, and
  // the kernel zeroes fresh pages on every step (5-8 % of the quickstart CNN's epoch on 2 cores, see
  // docs/benchmarks.md). Keeping blocks up to 32 MiB on the heap and never trimming below 1 GiB of
  // free memory keeps them: the process's resident memory stays at its peak instead.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  try {
    return run_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "loom: error: " << loom::host::error_text(e) << "\n";
  } catch (...) {
    std::cerr << "loom: error: an unknown exception ended the command\n";
  }
  return 1;
}
