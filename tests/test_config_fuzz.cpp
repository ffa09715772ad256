// `loom check` on hostile input: a seeded fuzzer over the shipped configs, and regression tests for each
// input that once crashed it, hung it, or passed it only for the run to fail. check must answer every
// config with exit 0 (ok) or 2 (rejected, each error at file:line:col or at its --set expression),
// never crash, never hang, and create nothing.
#include "test_util.h"

#include "config/config.h"
#include "plugins/registry.h"
#include "config/resolve.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <regex>
#include <thread>

extern char** environ;

namespace loom::test {
namespace {

using host::Config;
using host::ConfigError;
using host::ConfigErrors;

/// `argv` run without a shell (the fuzzer's arguments hold quotes, newlines and invalid UTF-8) in `cwd`,
/// stdout and stderr together, ended by `timeout` after `seconds` (exit code 124 then).
CommandResult spawn(const std::vector<std::string>& args, const fs::path& cwd, int seconds) {
  std::vector<std::string> full = {"timeout", "-k", "5", std::to_string(seconds)};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  // LOOM_PLUGIN_PATH would add plugins the shipped configs do not expect (as test_util.h's loom() does).
  std::vector<char*> env;
  for (char** e = environ; *e; ++e)
    if (std::string_view(*e).rfind("LOOM_PLUGIN_PATH=", 0) != 0) env.push_back(*e);
  env.push_back(nullptr);

  CommandResult r;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return r;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    r.output = "posix_spawnp failed: " + std::string(std::strerror(rc));
    return r;
  }
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) r.output.append(buffer, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// What is wrong with one `loom check` answer ("" when nothing): the contract every input must keep.
std::string contract_violation(const CommandResult& r, const fs::path& config, const fs::path& dir) {
  if (r.exit_code != 0 && r.exit_code != 2)
    return "exit code " + std::to_string(r.exit_code) + " (expected 0 or 2; 124 = timeout, 128+N = signal N)";
  for (const char* bad : {"terminate called", "Exception raised from", "Segmentation fault", "Aborted"})
    if (r.output.find(bad) != std::string::npos) return std::string("output holds \"") + bad + "\"";
  if (r.exit_code == 2) {
    // Every line is an error at the config's file:line:col or at its --set expression, a logged warning
    // (a plugin directory that does not exist), or the summary: a value that broke an error into several
    // lines, or an error without a position, fails here.
    static const std::regex position("^[0-9]+:[0-9]+: error: .*");
    static const std::regex warning("^\\[[0-9:]+\\] warning .*");
    const std::string file = config.string();
    std::istringstream lines(r.output);
    std::string line;
    int errors = 0;
    bool summary = false;
    while (std::getline(lines, line)) {
      if (line.rfind("loom: config rejected (", 0) == 0) {
        summary = true;
      } else if ((line.rfind(file + ":", 0) == 0 && std::regex_match(line.substr(file.size() + 1, 40), position)) ||
                 (line.rfind("--set ", 0) == 0 && line.find(": error: ") != std::string::npos)) {
        ++errors;
      } else if (!std::regex_match(line, warning)) {
        return "a line that is no positioned error: " + line;
      }
    }
    if (errors == 0 || !summary) return "rejected without a positioned error and the summary line";
  }
  std::vector<std::string> extra;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path() != config) extra.push_back(e.path().string());
  if (!extra.empty()) return "created " + extra.front() + (extra.size() > 1 ? " and more" : "");
  return "";
}

// --- the fuzzer ----------------------------------------------------------------------------------------

struct Variant {
  std::string what;  ///< the mutations, for the failure report
  std::string text;  ///< the config file
  std::vector<std::string> sets;
};

class Mutator {
 public:
  Mutator(uint64_t seed, const fs::path& dir) : rng_(seed), dir_(dir.string()) {}

  Variant make(const std::string& base, size_t forced) {
    Variant v{"", base, {}};
    // The first variants take each mutation in turn, so every kind runs whatever the count; the rest
    // combine one to three at random.
    if (forced < 3 * kMutations) {
      apply(v, forced % kMutations);
    } else {
      const int n = 1 + static_cast<int>(pick(3));
      for (int i = 0; i < n; ++i) apply(v, pick(kMutations));
    }
    return v;
  }

  static constexpr size_t kMutations = 16;

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  template <class T>
  const T& one_of(const std::vector<T>& items) { return items[pick(items.size())]; }

  /// A random "key = value" line of the text: [start of value, end of line).
  std::optional<std::pair<size_t, size_t>> value_span(const std::string& text) {
    std::vector<std::pair<size_t, size_t>> spans;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(start, end - start);
      const size_t eq = line.find(" = ");
      if (eq != std::string::npos && line[0] != '#') {
        size_t value_end = line.find(" #", eq);  // keep a trailing comment
        spans.emplace_back(start + eq + 3, start + (value_end == std::string::npos ? line.size() : value_end));
      }
      start = end + 1;
    }
    if (spans.empty()) return std::nullopt;
    return one_of(spans);
  }

  void replace_value(Variant& v, const std::string& value) {
    if (auto span = value_span(v.text)) v.text.replace(span->first, span->second - span->first, value);
  }

  std::string long_path() {
    switch (pick(3)) {
      case 0: return dir_ + "/" + std::string(256 + pick(200), 'x');                      // one name > 255 bytes
      case 1: {                                                                            // > 4096 bytes in all
        std::string p = dir_;
        while (p.size() <= 4200) p += "/" + std::string(200, 'y');
        return p;
      }
      default: return std::string(300, 'z');                                              // relative, > 255
    }
  }

  std::string bad_name() {
    return one_of<std::string>({"a\nb", "tab\there", "bell\x07", "del\x7F", "\xFF\xFE", "trunc\xE2\x82", "over\xC0\x80",
                                "", ".", "..", "a/b", "/abs", std::string(101, 'n'), "x\r", "nul\\u0000"});
  }

  void apply(Variant& v, size_t which) {
    static const std::vector<std::string> numbers = {"99999999999999999999", "-1", "-9223372036854775808",
                                                     "9223372036854775807", "1e308", "-1e308", "1e999", "nan", "-nan",
                                                     "inf", "-inf", "0", "1e-320", "0x7fffffffffffffff", "-0"};
    static const std::vector<std::string> wrong = {"\"str\"", "true", "[1, \"a\"]", "{ a = 1 }", "1979-05-27T07:32:00Z",
                                                   "[]", "[[1]]", "{}", "07:32:00", "1979-05-27 07:32:00", "'lit'",
                                                   "\"\"\"multi\nline\"\"\"", "[{ plugin = \"ema\" }]"};
    switch (which) {
      case 0: {  // byte flips
        const int flips = 1 + static_cast<int>(pick(4));
        for (int i = 0; i < flips && !v.text.empty(); ++i) v.text[pick(v.text.size())] = static_cast<char>(pick(256));
        v.what += "byte flips; ";
        break;
      }
      case 1:  // truncation
        v.text.resize(pick(v.text.size() + 1));
        v.what += "truncated; ";
        break;
      case 2:
        replace_value(v, one_of(numbers));
        v.what += "number; ";
        break;
      case 3:
        replace_value(v, one_of(wrong));
        v.what += "wrong type; ";
        break;
      case 4: {  // deep arrays and inline tables
        const size_t depth = one_of<size_t>({50, 127, 129, 300, 5000});
        const bool table = pick(2);
        std::string value = table ? "" : std::string(depth, '[') + "1" + std::string(depth, ']');
        if (table) {
          for (size_t i = 0; i < depth; ++i) value += "{ a = ";
          value += "1";
          for (size_t i = 0; i < depth; ++i) value += " }";
        }
        v.text += "\n[model]\ndeep = " + value + "\n";
        v.what += "nesting " + std::to_string(depth) + "; ";
        break;
      }
      case 5: {  // long dotted headers (50,000 parts crashed toml++) and dotted keys
        const size_t parts = one_of<size_t>({2, 64, 65, 1000, 20000, 50000, 100000});
        std::string dotted = "a";
        for (size_t i = 1; i < parts; ++i) dotted += ".a";
        const bool header = pick(2);
        v.text += header ? "\n[" + dotted + "]\n" : "\n[model]\n" + dotted + " = 1\n";
        v.what += std::string(header ? "header" : "dotted key") + " of " + std::to_string(parts) + " parts; ";
        break;
      }
      case 6: {  // long strings, some unterminated
        const size_t size = one_of<size_t>({5000, 100000, 900000, 1100000});
        const char* quote = one_of<const char*>({"\"", "'", "\"\"\"", "'''"});
        const bool closed = pick(2);
        replace_value(v, quote + std::string(size, 's') + (closed ? quote : ""));
        v.what += "string of " + std::to_string(size) + (closed ? "" : ", unterminated") + "; ";
        break;
      }
      case 7: {  // long paths
        const std::string key = one_of<std::string>({"dataset.root", "run.output_dir", "run.cache_dir"});
        const std::string path = long_path();
        if (pick(2)) v.sets.push_back(key + "=" + path);
        else v.sets.push_back(key + "=\"" + path + "\"");
        v.what += "long " + key + "; ";
        break;
      }
      case 8: {  // run.name: control characters, invalid UTF-8, path syntax
        v.sets.push_back("run.name=" + bad_name());
        v.what += "bad run.name via --set; ";
        break;
      }
      case 9: {  // a bad name in the file, as a TOML escape where raw bytes would be a syntax error
        static const std::vector<std::string> escaped = {"a\\nb", "x\\u0001y", "\\u007f", "", ".", "..", "a/b",
                                                         std::string(101, 'n'), "\\t"};
        const std::string line = "name = \"" + one_of(escaped) + "\"";
        const size_t run = v.text.find("[run]\n");
        if (run != std::string::npos) v.text.insert(run + 6, line + "\n");
        else v.text = "[run]\n" + line + "\n" + v.text;
        v.what += "bad run.name in the file; ";
        break;
      }
      case 10: {  // multi-line --set values
        v.sets.push_back(one_of<std::string>({"run.name=\"x\"\n[model]\nplugin=\"cnn\"", "optimizer.lr=0.1\nx = 1",
                                              "run.epochs=1\r\n", "run.name=a\nb", "model.hidden=[1,\n2]"}));
        v.what += "multi-line --set; ";
        break;
      }
      case 11: {  // --set with unknown tables and keys, and [[...]] indices
        v.sets.push_back(one_of<std::string>(
            {"nosuch.key=1", "run.nosuch=1", "run=1", "run.", ".x=1", "=", "callback[0].decay=0.5",
             "callback[5].x=1", "callback[999999].x=1", "callback[9999999].x=1", "callback[-1].x=1",
             "callback[1].plugin=\"ema\"", "callback[0].plugin=\"nosuch\"", "metric_sink[0].plugin=\"jsonl\"",
             "dataset[0].x=1", "callback.x=1", "run.a.b=1", "run.name", "[run].name=1", "callback[].x=1",
             "callback[0x1].x=1", "run.\xFF=1", "\xFF.x=1"}));
        v.what += "--set unknown/indexed; ";
        break;
      }
      case 12: {  // a random value through --set, of a random type
        const std::string key =
            one_of<std::string>({"run.epochs", "run.seed", "run.threads", "loader.batch_size", "optimizer.lr",
                                 "optimizer.momentum", "lr_schedule.name", "run.device", "run.test_on",
                                 "dataset.samples", "model.hidden", "run.plugin_paths", "optimizer.nesterov"});
        const std::string value = pick(2) ? one_of(numbers) : one_of(wrong);
        v.sets.push_back(key + "=" + (value.find('\n') == std::string::npos ? value : "1"));
        v.what += "--set " + key + "; ";
        break;
      }
      case 13: {  // deep or long values through --set
        const size_t parts = one_of<size_t>({65, 50000});
        std::string dotted = "a";
        for (size_t i = 1; i < parts; ++i) dotted += ".a";
        v.sets.push_back(pick(2) ? "model.x={" + dotted + " = 1}" : "model.x=" + std::string(300, '[') + std::string(300, ']'));
        v.what += "deep --set; ";
        break;
      }
      case 14: {  // lines removed or repeated
        const size_t at = pick(v.text.size() + 1);
        const size_t start = v.text.rfind('\n', at == 0 ? 0 : at - 1);
        const size_t s = start == std::string::npos ? 0 : start + 1;
        size_t e = v.text.find('\n', s);
        e = e == std::string::npos ? v.text.size() : e + 1;
        const std::string line = v.text.substr(s, e - s);
        if (pick(2)) v.text.erase(s, e - s);
        else v.text.insert(e, line + (line.empty() || line.back() != '\n' ? "\n" : ""));
        v.what += "line removed/repeated; ";
        break;
      }
      default: {  // control characters and invalid UTF-8 anywhere in the file
        const std::string junk = one_of<std::string>({"\xFF", "\xC0\x80", "\x01", "\x7F", "\r", "\xEF\xBB\xBF", "\0"});
        v.text.insert(pick(v.text.size() + 1), junk.empty() ? std::string(1, '\0') : junk);
        v.what += "junk bytes; ";
        break;
      }
    }
  }

  std::mt19937_64 rng_;
  std::string dir_;
};

/// The shipped configs and the tests' synthetic one, with their outputs pointed at "out" and "cache"
/// beside the config (so anything check created would land in the fuzzer's temporary directory).
std::vector<std::pair<std::string, std::string>> base_configs() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(LOOM_TEST_SOURCE_DIR) / "configs"))
    if (e.path().extension() == ".toml") files.push_back(e.path());
  std::sort(files.begin(), files.end());  // directory order differs between machines; the seed must not
  files.push_back(fs::path(LOOM_TEST_SOURCE_DIR) / "tests/configs/synthetic.toml");
  std::vector<std::pair<std::string, std::string>> out;
  static const std::regex dirs("\n(output_dir|cache_dir) *=[^\n]*");
  for (const auto& f : files) {
    std::string text = std::regex_replace(slurp(f), dirs, "");
    const size_t run = text.find("[run]\n");
    const std::string mine = "output_dir = \"out\"\ncache_dir = \"cache\"\n";
    if (run != std::string::npos) text.insert(run + 6, mine);
    else text = "[run]\n" + mine + text;
    out.emplace_back(f.filename().string(), text);
  }
  return out;
}

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : fallback;
}

/// One variant run through `loom check`, judged in its own temporary directory.
struct Outcome {
  std::string base, what, problem, output;
  int exit_code = -1;
};

Outcome run_variant(uint64_t seed, size_t i, const std::vector<std::pair<std::string, std::string>>& bases,
                    const fs::path& keep) {
  TempDir dir;
  Mutator mutator(seed + i, dir.path());  // one stream per variant: a variant reproduces on its own
  std::mt19937_64 base_pick(seed ^ (i * 0x9E3779B97F4A7C15ull));
  const auto& [base_name, base_text] = bases[base_pick() % bases.size()];
  const Variant v = mutator.make(base_text, i);
  const fs::path config = dir / "c.toml";
  { std::ofstream(config, std::ios::binary) << v.text; }
  std::vector<std::string> args = {LOOM_TEST_BIN, "check", config.string()};
  for (const auto& s : v.sets) args.insert(args.end(), {"--set", s});
  const CommandResult r = spawn(args, dir.path(), 20);
  Outcome out{base_name, v.what, contract_violation(r, config, dir.path()), "", r.exit_code};
  if (out.problem.empty()) return out;
  const fs::path kept = keep / ("seed-" + std::to_string(seed) + "-variant-" + std::to_string(i));
  fs::create_directories(kept);
  std::ofstream(kept / "c.toml", std::ios::binary) << v.text;
  std::ofstream sets(kept / "set-args.txt", std::ios::binary);
  for (const auto& s : v.sets) sets << s << '\0';  // NUL-separated: values may hold newlines
  out.output = r.output.substr(0, 2000) + "\nkept in " + kept.string() + " (--set values NUL-separated in set-args.txt)";
  return out;
}

// LOOM_FUZZ_SEED, LOOM_FUZZ_VARIANTS and LOOM_FUZZ_JOBS change the run (the defaults keep it
// deterministic); a failing variant is kept under build/config-fuzz-failures/ with the arguments that
// reproduce it. Two checks run at a time: each spends most of its ~0.3 s loading LibTorch.
TEST(ConfigFuzz, CheckAnswersEveryMutatedConfigCleanly) {
  const uint64_t seed = env_number("LOOM_FUZZ_SEED", 0x10057EEDull);
  const size_t count = env_number("LOOM_FUZZ_VARIANTS", 250);
  const size_t jobs = std::max<uint64_t>(1, env_number("LOOM_FUZZ_JOBS", 2));
  const auto bases = base_configs();
  ASSERT_GE(bases.size(), 2u);
  const fs::path keep = fs::path(LOOM_TEST_BUILD_DIR) / "config-fuzz-failures";
  const auto started = std::chrono::steady_clock::now();
  std::vector<Outcome> outcomes(count);
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  for (size_t w = 0; w < jobs; ++w)
    workers.emplace_back([&] {
      for (size_t i; (i = next++) < count;) outcomes[i] = run_variant(seed, i, bases, keep);
    });
  for (auto& w : workers) w.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::map<int, int> exit_codes;
  int failures = 0;
  for (size_t i = 0; i < count; ++i) {
    const Outcome& o = outcomes[i];
    ++exit_codes[o.exit_code];
    if (o.problem.empty() || ++failures > 10) continue;
    ADD_FAILURE() << "seed " << seed << ", variant " << i << " (" << o.base << ": " << o.what << "): " << o.problem
                  << "\noutput:\n" << o.output;
  }
  std::ostringstream codes;
  for (const auto& [code, n] : exit_codes) codes << " exit " << code << ": " << n << ";";
  std::cout << "config fuzz: seed " << seed << ", " << count << " variants, " << jobs << " at a time, in " << seconds
            << " s;" << codes.str() << (failures ? " " + std::to_string(failures) + " failed" : std::string()) << "\n";
}

// --- regressions: one per input that used to crash check or pass it for the run to fail ----------------

const host::Registry& registry() {
  static host::Registry* r = [] {
    auto* reg = new host::Registry();
    reg->scan({LOOM_TEST_PLUGIN_DIR});
    return reg;
  }();
  return *r;
}

const char* kBase = R"([run]
name = "t"

[dataset]
plugin = "synthetic"

[model]
plugin = "mlp"
)";

class ConfigLimits : public ::testing::Test {
 protected:
  TempDir dir;
  std::string file() const { return (dir / "c.toml").string(); }

  /// Every error of `text` + `overrides` (load, overrides and resolve, as check does them).
  std::vector<std::string> errors_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
    std::ofstream(dir / "c.toml", std::ios::binary) << text;
    try {
      Config config = Config::load(dir / "c.toml");
      std::vector<ConfigError> errs;
      for (const auto& o : overrides) config.apply_override(o, errs);
      if (!errs.empty()) throw ConfigErrors(errs);
      host::resolve(config, registry());
    } catch (const ConfigErrors& e) {
      std::vector<std::string> out;
      for (const auto& err : e.errors()) out.push_back(err.str());
      return out;
    }
    return {};
  }

  /// `loom check` through the binary: the contract holds, and the answer is `expected_exit`.
  CommandResult check(const std::string& text, const std::vector<std::string>& sets, int expected_exit) {
    std::ofstream(dir / "c.toml", std::ios::binary) << text;
    std::vector<std::string> args = {LOOM_TEST_BIN, "check", file()};
    for (const auto& s : sets) args.insert(args.end(), {"--set", s});
    CommandResult r = spawn(args, dir.path(), 30);
    EXPECT_EQ(contract_violation(r, dir / "c.toml", dir.path()), "") << r.output;
    EXPECT_EQ(r.exit_code, expected_exit) << r.output;
    return r;
  }
};

std::string dotted(size_t parts) {
  std::string s = "a";
  for (size_t i = 1; i < parts; ++i) s += ".a";
  return s;
}

// 1. Paths the file system refuses ended check with an uncaught std::filesystem::filesystem_error.
TEST_F(ConfigLimits, OverlongPathNamesAreErrors) {
  const std::string name(256, 'x');
  const std::string set = "dataset.root=" + dir.path().string() + "/" + name;
  const std::string shown = set.size() <= 200 ? set : set.substr(0, 200) + "… (" + std::to_string(set.size()) + " bytes in all)";
  auto e = errors_of("[dataset]\nplugin = \"fashion-mnist\"\n[model]\nplugin = \"mlp\"\n", {set});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set " + shown + ": error: 'root' in [dataset] (plugin 'fashion-mnist') has a name of 256 bytes "
                  "in its path (" + std::string(60, 'x') + "…); the file system allows at most 255 bytes per name");

  std::string deep = dir.path().string();
  while (deep.size() < 4200) deep.append("/").append(100, 'd');
  e = errors_of(kBase, {"run.output_dir=" + deep, "run.cache_dir=" + deep});
  ASSERT_EQ(e.size(), 2u);
  for (const char* key : {"output_dir", "cache_dir"})
    EXPECT_NE(std::find_if(e.begin(), e.end(), [&](const std::string& s) {
                return s.find(std::string(": error: '") + key + "' in [run] is a path of " +
                              std::to_string(deep.size()) + " bytes (" + deep.substr(0, 60) +
                              "…); the file system allows at most 4095") != std::string::npos;
              }),
              e.end())
        << key;

  e = errors_of("[run]\noutput_dir = \"" + name + "\"\n[dataset]\nplugin = \"synthetic\"\n[model]\nplugin = \"mlp\"\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].rfind(file() + ":2:14: error: 'output_dir' in [run] has a name of 256 bytes in its path", 0), 0u) << e[0];

  // Through the binary: exit 2 and the message, not `terminate called` and exit 134.
  for (const char* key : {"dataset.root", "run.output_dir", "run.cache_dir"}) {
    auto r = check("[dataset]\nplugin = \"fashion-mnist\"\n[model]\nplugin = \"mlp\"\n",
                   {std::string(key) + "=/tmp/" + name}, 2);
    EXPECT_NE(r.output.find("has a name of 256 bytes in its path"), std::string::npos) << r.output;
  }
}

// 2. Headers and dotted keys of tens of thousands of parts overflowed toml++'s recursion (exit 139).
TEST_F(ConfigLimits, DeepHeadersAndKeysAreRejectedBeforeParsing) {
  auto e = errors_of(std::string(kBase) + "\n[" + dotted(50000) + "]\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":10:1: error: TOML too deep: a table header with more than 64 dotted parts; Loom's "
                           "tables and keys are a name or two, e.g. [dataset] or lr = 0.1");
  e = errors_of(std::string(kBase) + "x = 1\n  " + dotted(65) + " = 2\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":10:3: error: TOML too deep: a dotted key with more than 64 dotted parts; Loom's "
                           "tables and keys are a name or two, e.g. [dataset] or lr = 0.1");
  // 64 + 64 parts are allowed; one array more is too deep.
  e = errors_of("[" + dotted(64) + "]\n" + dotted(64) + " = [1]\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":2:" + std::to_string(dotted(64).size() + 4) +
                      ": error: TOML too deep: values nest more than 128 levels deep (table header parts, dotted "
                      "key parts and arrays together); a Loom config nests a few levels at most");
  // A 64-part header alone is parsed, and is an unknown table like any other.
  e = errors_of(std::string(kBase) + "[" + dotted(64) + "]\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].rfind(file() + ":9:", 0), 0u) << e[0];
  EXPECT_NE(e[0].find(": error: unknown table [a]"), std::string::npos) << e[0];

  // --set values go through the same scan.
  const std::string set = "model.x={" + dotted(100) + " = 1}";
  e = errors_of(kBase, {set});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set " + set.substr(0, 200) + "… (" + std::to_string(set.size()) +
                      " bytes in all): error: TOML too deep: a dotted key with more than 64 dotted parts; Loom's "
                      "tables and keys are a name or two, e.g. [dataset] or lr = 0.1");

  // A string left open to the end of a long file is a syntax error, not a crash.
  e = errors_of(std::string(kBase) + "[optimizer]\nname = \"" + std::string(500000, 's'));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].rfind(file() + ":10:", 0), 0u) << e[0].substr(0, 300);
  EXPECT_NE(e[0].find("error: TOML syntax error: "), std::string::npos) << e[0].substr(0, 300);

  e = errors_of(std::string(kBase) + "# " + std::string(1 << 20, 'c') + "\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":9:" + std::to_string((1 << 20) - std::strlen(kBase) + 1) +
                      ": error: the config file is larger than 1048576 bytes (1 MiB), the most a config may be; "
                      "this is its byte 1048577");

  check(std::string(kBase) + "\n[" + dotted(50000) + "]\n", {}, 2);
  check(std::string(kBase) + "\n[" + dotted(100000) + "]\n", {}, 2);
  check(kBase, {"model.x={" + dotted(50000) + " = 1}"}, 2);
}

// 3. A run name with a newline broke --resume; one that is not UTF-8 failed the run's JSON.
TEST_F(ConfigLimits, RunNamesMustMakeADirectoryName) {
  const std::string tail = "; the run name becomes a directory name: use 1 to 100 bytes of text without '/' or "
                           "control characters, e.g. name = \"quickstart\"";
  const std::string rest = "\n[dataset]\nplugin = \"synthetic\"\n[model]\nplugin = \"mlp\"\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a\\nb", "contains a control character"},
      {"", "is empty"},
      {"..", "is \"..\", which names no new directory"},
      {".", "is \".\", which names no new directory"},
      {"a/b", "contains '/'"},
      {std::string(101, 'n'), "is 101 bytes long; at most 100 are allowed"},
  };
  for (const auto& [name, problem] : cases) {
    auto e = errors_of("[run]\nname = \"" + name + "\"" + rest);
    ASSERT_EQ(e.size(), 1u) << name;
    EXPECT_EQ(e[0], file() + ":2:8: error: 'name' in [run] " + problem + tail);
  }
  auto e = errors_of(kBase, {"run.name=x\x01y"});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set run.name=x\\x01y: error: 'name' in [run] contains a control character" + tail);
  // Not UTF-8: possible only through --set (toml++ refuses such a file); the error prints the byte escaped.
  e = errors_of(kBase, {"run.name=ab\xFF"});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set run.name=ab\\xFF: error: 'name' in [run] is not valid UTF-8 (byte 0xFF at offset 2); "
                  "strings must be UTF-8 text");
  // A quoted value that is not UTF-8 is no TOML value either: it is taken whole, quotes included.
  e = errors_of(kBase, {"optimizer.name=\"sg\xC0\x80\"", "run.device=cpu\xE2\x82"});
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0], "--set run.device=cpu\\xE2\\x82: error: 'device' in [run] is not valid UTF-8 (byte 0xE2 at "
                  "offset 3); strings must be UTF-8 text");
  EXPECT_EQ(e[1], "--set optimizer.name=\"sg\\xC0\\x80\": error: 'name' in [optimizer] is not valid UTF-8 (byte "
                  "0xC0 at offset 3); strings must be UTF-8 text");
  // Names that are fine: UTF-8 text with spaces and dots.
  EXPECT_TRUE(errors_of("[run]\nname = \"Übung 1.5\"" + rest).empty());
  check(kBase, {"run.name=a\nb"}, 2);
  check(kBase, {"run.name=\xFF"}, 2);
}

// 4. A --set value with a newline carried more TOML, which the override dropped without a word.
TEST_F(ConfigLimits, SetValuesAreOneValueOnOneLine) {
  const std::string set = "run.name=\"x\"\n[model]\nplugin=\"cnn\"";
  auto e = errors_of(kBase, {set});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set run.name=\"x\"\\n[model]\\nplugin=\"cnn\": error: a --set value must be one TOML value on "
                  "one line; multi-line values are not allowed");
  e = errors_of(kBase, {"run.epochs=2\r\n"});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set run.epochs=2\\r\\n: error: a --set value must be one TOML value on one line; multi-line "
                  "values are not allowed");
  // One value with a comment after it is still one value.
  EXPECT_TRUE(errors_of(kBase, {"run.epochs=2 # two"}).empty());
  auto r = check(kBase, {set}, 2);
  EXPECT_NE(r.output.find("multi-line values are not allowed"), std::string::npos) << r.output;
}

// 5. Configs check passed and the run refused at once.
TEST_F(ConfigLimits, WhatTheRunRefusesCheckRejects) {
  auto e = errors_of("[run]\nname = \"t\"\ntest_on = \"best\"\n[dataset]\nplugin = \"synthetic\"\n[model]\nplugin = \"mlp\"\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":3:11: error: 'test_on' in [run] is \"best\", which needs a [[callback]] that keeps a best "
                           "model (e.g. plugin = \"best-checkpoint\"); add one, or set test_on = \"last\"");
  EXPECT_TRUE(errors_of(std::string(kBase) + "[[callback]]\nplugin = \"best-checkpoint\"\n", {"run.test_on=best"}).empty());

  e = errors_of(std::string(kBase) + "[optimizer]\nname = \"sgd\"\nmomentum = 0.0\nnesterov = true\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":12:12: error: 'nesterov' in [optimizer] is true but momentum is 0; Nesterov momentum "
                           "needs momentum > 0");

  write_file(dir / "taken", "a file, not a directory");
  e = errors_of(kBase, {"run.output_dir=" + (dir / "taken" / "runs").string()});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set run.output_dir=" + (dir / "taken" / "runs").string() +
                      ": error: 'output_dir' in [run] cannot hold run directories: " + (dir / "taken").string() +
                      " exists and is not a directory");
  fs::remove(dir / "taken");
}

// Error lines stay one line whatever the input holds: a key with a newline, a value with control bytes.
TEST_F(ConfigLimits, ErrorLinesArePrintable) {
  auto e = errors_of(kBase, {"run.na\nme=1"});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set run.na\\nme=1: error: unknown key 'na\\nme' in [run]; did you mean 'name'?");
  e = errors_of(kBase, {"run.epochs=\"a\x1b[31mred\""});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set run.epochs=\"a\\x1B[31mred\": error: 'epochs' in [run] must be an integer, found string "
                  "\"\"a\\x1B[31mred\"\"");
}

}  // namespace
}  // namespace loom::test
