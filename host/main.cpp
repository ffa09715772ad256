// loom — the host program. Orchestrates; every technique lives in a plugin.
#include "commands.h"

#include <loom/abi.h>

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
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

  std::string plugin_name;
  bool json = false;
  auto* plugins_cmd = app.add_subcommand("plugins", "list plugins, or show one plugin's parameters");
  plugins_cmd->add_option("name", plugin_name, "a plugin name, or KIND/NAME");
  plugins_cmd->add_flag("--json", json, "machine-readable output");

  CLI11_PARSE(app, argc, argv);

  if (*run_cmd) {
    if (run_config.empty() == run.resume.empty()) {
      std::cerr << "loom run: pass a CONFIG file to start a run, or --resume RUN_DIR to continue one\n";
      return 2;
    }
    run.config = run_config;
    return loom::host::run_command(run);
  }
  if (*check_cmd) return loom::host::check_command(check_config, check_overrides);
  return loom::host::plugins_command(plugin_name, json);
}
