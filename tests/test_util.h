// Small helpers shared by the tests: run the real `loom` binary, temporary directories, files.
#pragma once

#include "test_paths.h"

#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <stdlib.h>
#include <sstream>
#include <string>
#include <vector>

namespace loom::test {

namespace fs = std::filesystem;

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

/// Runs a shell command line, capturing stdout+stderr.
inline CommandResult run(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

/// `loom ARGS`, with the fixture plugin dir on LOOM_PLUGIN_PATH only when asked.
inline CommandResult loom(const std::string& args, const std::string& plugin_path = "") {
  std::string env = plugin_path.empty() ? "env -u LOOM_PLUGIN_PATH " : "env LOOM_PLUGIN_PATH='" + plugin_path + "' ";
  return run(env + LOOM_TEST_BIN " " + args);
}

/// A fresh temporary directory, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    // mkdtemp: unique and created atomically (no random_device, no race between parallel tests).
    std::string pattern = (fs::temp_directory_path() / "loom-test-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

/// `s` in single quotes, as one word of a shell command line (`s` must hold no single quote).
inline std::string quote(const std::string& s) { return "'" + s + "'"; }

inline void write_file(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

inline std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<nlohmann::json> read_jsonl(const fs::path& file) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

/// The per-epoch records of a metrics.jsonl (events such as "setup" and "test" left out).
inline std::vector<nlohmann::json> read_epoch_records(const fs::path& file) {
  std::vector<nlohmann::json> epochs;
  for (auto& record : read_jsonl(file))
    if (record.contains("epoch")) epochs.push_back(std::move(record));
  return epochs;
}

/// The single run directory under <output_dir>/<name>/.
inline fs::path only_run_dir(const fs::path& output_dir, const std::string& name) {
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(output_dir / name)) dirs.push_back(e.path());
  return dirs.size() == 1 ? dirs[0] : fs::path();
}

/// Everything under `dir`, for "nothing was created" checks.
inline size_t count_entries(const fs::path& dir) {
  if (!fs::exists(dir)) return 0;
  size_t n = 0;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) ++n;
  return n;
}

}  // namespace loom::test
