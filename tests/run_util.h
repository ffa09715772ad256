// Helpers for tests that drive whole `loom` runs: read model.pt, a run's text files, its round records and
// pseudo-label arrays, and stop a run with SIGTERM.
#pragma once

#include "test_util.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>

extern char** environ;

namespace loom::test {

/// model.pt as written by Module::save: tensors by dotted name, child modules as nested archives.
inline std::map<std::string, at::Tensor> load_weights(const fs::path& file) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  std::map<std::string, at::Tensor> out;
  std::function<void(torch::serialize::InputArchive&, const std::string&)> collect =
      [&](torch::serialize::InputArchive& a, const std::string& prefix) {
        for (const auto& key : a.keys()) {
          at::Tensor t;
          torch::serialize::InputArchive child;
          if (a.try_read(key, t))
            out[prefix + key] = t;
          else if (a.try_read(key, child))
            collect(child, prefix + key + ".");
        }
      };
  collect(archive, "");
  return out;
}

/// `loom run <config> --set run.output_dir=<output_dir>` with a --set for each of `sets`, as argv.
inline std::vector<std::string> run_argv(const fs::path& config, const fs::path& output_dir,
                                         const std::vector<std::string>& sets = {}) {
  std::vector<std::string> a = {LOOM_TEST_BIN, "run", config.string(), "--set", "run.output_dir=" + output_dir.string()};
  for (const auto& s : sets) a.insert(a.end(), {"--set", s});
  return a;
}

/// argv[from..] as one shell command line, each word quoted and followed by a space.
inline std::string command_line(const std::vector<std::string>& argv, size_t from = 0) {
  std::string cmd;
  for (size_t i = from; i < argv.size(); ++i) cmd += quote(argv[i]) + " ";
  return cmd;
}

/// Expects two model files (model.pt, stages/<stage>.pt, …) to hold the same tensors, bit for bit.
inline void expect_same_weights(const fs::path& a, const fs::path& b) {
  const auto wa = load_weights(a), wb = load_weights(b);
  ASSERT_FALSE(wa.empty()) << a;
  ASSERT_EQ(wa.size(), wb.size()) << a << " vs " << b;
  for (const auto& [name, t] : wa) {
    ASSERT_TRUE(wb.count(name)) << name << " is missing from " << b;
    EXPECT_TRUE(torch::equal(t, wb.at(name))) << name << " differs: " << a << " vs " << b;
  }
}

/// Expects two model files to hold the same tensor names, at least one of them with other values.
inline void expect_different_weights(const fs::path& a, const fs::path& b) {
  const auto wa = load_weights(a), wb = load_weights(b);
  ASSERT_FALSE(wa.empty()) << a;
  ASSERT_EQ(wa.size(), wb.size()) << a << " vs " << b;
  bool all_equal = true;
  for (const auto& [name, t] : wa) all_equal = all_equal && torch::equal(t, wb.at(name));
  EXPECT_FALSE(all_equal) << a << " and " << b << " hold the same weights";
}

/// Bit-for-bit equality, including dtype, shape and NaN payloads (torch::equal says NaN != NaN).
inline void expect_same_bytes(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.scalar_type(), b.scalar_type()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  EXPECT_EQ(std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()), 0) << what << ": the bytes differ";
}

/// A tensor's values as int64s, in order.
inline std::vector<int64_t> vec(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

/// The non-empty lines of a text file (a recording fixture's calls, a callback's events).
inline std::vector<std::string> lines_of(const fs::path& file) {
  std::vector<std::string> out;
  std::istringstream in(read_file(file));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

/// A directory's .npy arrays (e.g. pseudo_labels_round<r>/) as numpy reads them (tests/python/read_npy_dir.py):
/// {"<name>": {"dtype": ..., "shape": [...], "values": [...]}, ...}.
inline nlohmann::json read_npy_dir(const fs::path& dir) {
  const CommandResult r = run(std::string(LOOM_TEST_PYTHON) + " " + LOOM_TEST_SOURCE_DIR +
                              "/tests/python/read_npy_dir.py " + dir.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return nlohmann::json::parse(r.output);
}

/// A self-training run's round records (type "round" in metrics.jsonl), round 0 first.
inline std::vector<nlohmann::json> round_records(const fs::path& run_dir) {
  std::vector<nlohmann::json> out;
  for (const auto& m : read_jsonl(run_dir / "metrics.jsonl"))
    if (m.value("type", "") == "round") out.push_back(m);
  return out;
}

/// Starts `args` and sends SIGTERM `delay` after `ready()` first returns true (polled every 5 ms). Returns
/// the exit code; `*stopped` says whether the signal was sent at all. `stop` replaces the SIGTERM to the
/// started process (e.g. signal the ranks of an mpirun job instead).
inline int run_and_stop_when(const std::vector<std::string>& args, const std::function<bool()>& ready,
                             std::chrono::milliseconds delay, bool* stopped,
                             const std::function<void(pid_t)>& stop = {}) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  *stopped = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (!*stopped && ready()) {
      std::this_thread::sleep_for(delay);
      if (stop) stop(pid);
      else kill(pid, SIGTERM);
      *stopped = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Whether some run directory under `runs_dir` (<output_dir>/<name>/) holds `file`.
inline bool some_run_has(const fs::path& runs_dir, const fs::path& file) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(runs_dir, ec))
    if (fs::exists(e.path() / file, ec)) return true;
  return false;
}

/// Starts `args` and sends SIGTERM `delay` after the first checkpoint.pt appears under
/// `runs_dir`/<timestamp>/ (the end of epoch 1), so the run stops inside epoch 2. Returns the exit code;
/// `*stopped` says whether the signal was sent at all.
inline int run_and_stop_after_first_checkpoint(const std::vector<std::string>& args, const fs::path& runs_dir,
                                               std::chrono::milliseconds delay, bool* stopped) {
  return run_and_stop_when(args, [&] { return some_run_has(runs_dir, "checkpoint.pt"); }, delay, stopped);
}

}  // namespace loom::test
