// Checkpoint state as a registry of providers (host/state/providers.h): the registry's rules, stable keys
// that follow a [[callback]] when tables are reordered, a checkpoint of format 2 (an older Loom's) resumed
// by this one, and a run killed before it wrote its config.
#include "run_util.h"

#include "state/providers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>

namespace loom::test {
namespace {

using host::CheckpointError;
using host::CheckpointReader;
using host::CheckpointWriter;
using host::EntryReader;
using host::EntryWriter;
using host::Fields;
using host::StatePhase;
using host::StateProvider;
using host::StateRegistry;
using host::StateSource;

StateProvider counter(const std::string& key, StatePhase phase, int64_t& value, std::vector<std::string>* loads = nullptr) {
  StateProvider p;
  p.key = key;
  p.phase = phase;
  p.save = [&value](EntryWriter& w) {
    Fields f;
    f.ints["value"] = value;
    w.write({}, f);
  };
  p.load = [&value, loads, key](const EntryReader& r) {
    value = r.fields().integer("value");
    if (loads) loads->push_back(key);
  };
  return p;
}

TEST(StateRegistry, SavesEveryProviderAndLoadsThemPhaseByPhaseInRegistrationOrder) {
  TempDir dir;
  int64_t a = 1, b = 2, c = 3;
  {
    StateRegistry registry;
    auto ra = registry.add(counter("a", StatePhase::Stage, a));
    auto rb = registry.add(counter("b", StatePhase::Run, b));
    auto rc = registry.add(counter("c", StatePhase::Stage, c));
    CheckpointWriter w;
    registry.save(w);
    w.commit(dir / "checkpoint.pt");
  }
  a = b = c = 0;
  std::vector<std::string> loads;
  StateRegistry registry;
  auto ra = registry.add(counter("a", StatePhase::Stage, a, &loads));
  auto rb = registry.add(counter("b", StatePhase::Run, b, &loads));
  auto rc = registry.add(counter("c", StatePhase::Stage, c, &loads));
  const CheckpointReader reader(dir / "checkpoint.pt");
  EXPECT_EQ(reader.format(), host::kCheckpointFormat);
  const StateSource source(reader);
  registry.load(source, StatePhase::Run);
  EXPECT_EQ(loads, std::vector<std::string>({"b"}));
  registry.load(source, StatePhase::Stage);
  EXPECT_EQ(loads, std::vector<std::string>({"b", "a", "c"}));
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_EQ(c, 3);
}

TEST(StateRegistry, RefusesADuplicateKeyAndForgetsAProviderWhoseRegistrationEnds) {
  StateRegistry registry;
  int64_t x = 0;
  auto first = registry.add(counter("callback/ema", StatePhase::Run, x));
  try {
    auto second = registry.add(counter("callback/ema", StatePhase::Run, x));
    FAIL() << "a second provider under one key was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("callback/ema"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("id = "), std::string::npos) << e.what();
  }
  {
    auto stage = registry.add(counter("position", StatePhase::Stage, x));
    EXPECT_EQ(registry.keys(), std::vector<std::string>({"callback/ema", "position"}));
  }
  EXPECT_EQ(registry.keys(), std::vector<std::string>({"callback/ema"}));
}

TEST(StateRegistry, AMissingEntryOrANewerLayoutIsRefusedNamingTheFileAndTheEntry) {
  TempDir dir;
  {
    CheckpointWriter w;
    Fields f;
    f.ints["value"] = 5;
    w.add("newer", 7, {}, f);
    w.commit(dir / "checkpoint.pt");
  }
  const CheckpointReader reader(dir / "checkpoint.pt");
  const StateSource source(reader);
  int64_t x = 0;
  {
    StateRegistry registry;
    auto r = registry.add(counter("missing", StatePhase::Run, x));
    try {
      registry.load(source, StatePhase::Run);
      FAIL() << "a missing entry was accepted";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find((dir / "checkpoint.pt").string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("'missing'"), std::string::npos) << e.what();
    }
  }
  {
    // A provider that knows what to do without its entry (one a checkpoint predates) is told so instead.
    StateRegistry registry;
    bool called = false;
    StateProvider optional = counter("optional", StatePhase::Run, x);
    optional.absent = [&] { called = true; };
    auto o = registry.add(std::move(optional));
    registry.load(source, StatePhase::Run);
    EXPECT_TRUE(called);
  }
  StateRegistry registry;
  auto r = registry.add(counter("newer", StatePhase::Run, x));  // version 1 reads up to layout 1
  try {
    registry.load(source, StatePhase::Run);
    FAIL() << "a newer layout was accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("layout version 7"), std::string::npos) << e.what();
  }
  EXPECT_EQ(x, 0);
}

TEST(StateRegistry, AFormat2CheckpointsPositionalKeysReadAsStableKeys) {
  EXPECT_EQ(host::stable_key("callback", "ema", 0, ""), "callback/ema");
  EXPECT_EQ(host::stable_key("callback", "ema", 1, ""), "callback/ema#2");
  EXPECT_EQ(host::stable_key("metric_sink", "csv", 0, "wide"), "metric_sink/wide");
  const fs::path fixture = fs::path(LOOM_TEST_SOURCE_DIR) / "tests/fixtures/format2-run/checkpoint.pt";
  const CheckpointReader reader(fixture);
  ASSERT_EQ(reader.format(), 2);
  const StateSource source(reader);
  EXPECT_TRUE(source.has("callback/ema"));
  EXPECT_TRUE(source.has("callback/best-checkpoint"));
  EXPECT_TRUE(source.has("metric_sink/jsonl"));
  EXPECT_TRUE(source.has("metric_sink/csv"));
  EXPECT_FALSE(source.has("callback/0:ema"));
  EXPECT_TRUE(source.has("position"));
  EXPECT_EQ(source.entry("callback/ema").key(), "callback/ema");
}

// --- whole runs -------------------------------------------------------------------------------------

/// The parts of a record that do not depend on timing.
nlohmann::json deterministic(nlohmann::json record) {
  for (const char* k : {"epoch_seconds", "samples_per_second", "peak_memory_mb", "wall_seconds", "run_dir", "wall_time"})
    record.erase(k);
  return record;
}

/// Same weights, bit for bit, and the same metrics.jsonl records (timings and `ignored` keys aside).
void expect_same_run(const fs::path& expected, const fs::path& actual, const std::string& what,
                     const std::vector<std::string>& ignored = {}) {
  const auto wa = load_weights(expected / "model.pt"), wb = load_weights(actual / "model.pt");
  ASSERT_FALSE(wa.empty()) << what;
  ASSERT_EQ(wa.size(), wb.size()) << what;
  for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wb.at(name))) << what << ": " << name;
  const auto ma = read_jsonl(expected / "metrics.jsonl"), mb = read_jsonl(actual / "metrics.jsonl");
  ASSERT_EQ(ma.size(), mb.size()) << what << ": metrics.jsonl has " << mb.size() << " records, expected " << ma.size();
  for (size_t i = 0; i < ma.size(); ++i) {
    nlohmann::json a = deterministic(ma[i]), b = deterministic(mb[i]);
    for (const auto& k : ignored) a.erase(k), b.erase(k);
    EXPECT_EQ(a, b) << what << ": record " << i;
  }
}

/// Copies the committed format-2 run into `dir` (without its lock file) and returns the copy.
fs::path copy_fixture(const fs::path& dir) {
  const fs::path src = fs::path(LOOM_TEST_SOURCE_DIR) / "tests/fixtures/format2-run";
  const fs::path run = dir / "format2-run";
  fs::create_directories(run);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "README.md" && e.path().filename() != "format2.toml")
      fs::copy(e.path(), run / e.path().filename(), fs::copy_options::recursive);
  return run;
}

// The fixture was written by the Loom before the state registry (checkpoint format 2, positional callback
// and sink keys, the epoch's sums inside "position"), stopped by SIGTERM inside an accumulation group of
// epoch 2. What is provable: resumed by this Loom it ends bit-for-bit where an uninterrupted run of the
// same config ends with this Loom — weights and every metrics.jsonl record (timings aside) — because
// training is deterministic on one CPU thread and the old and the new Loom train identically (the
// registry changes what the checkpoint's keys are, not the arithmetic).
TEST(Format2, ACheckpointOfTheOlderFormatResumesAndEqualsAnUninterruptedRun) {
  TempDir dir;
  const fs::path run = copy_fixture(dir.path());
  const CommandResult resumed = loom("run --resume " + run.string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming stage 'supervised' at epoch 2"), std::string::npos) << resumed.output;
  const CommandResult fresh = loom("run " + (fs::path(LOOM_TEST_SOURCE_DIR) / "tests/fixtures/format2-run/format2.toml").string() +
                                   " --set run.output_dir=" + (dir / "fresh").string());
  ASSERT_EQ(fresh.exit_code, 0) << fresh.output;
  expect_same_run(only_run_dir(dir / "fresh", "format2"), run, "format-2 fixture resumed");
  // The resumed run's checkpoints are of this Loom's format.
  EXPECT_EQ(CheckpointReader(run / "checkpoint.pt").format(), host::kCheckpointFormat);
}

const std::string kSynthetic = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";

/// synthetic.toml with extra tables, long enough for a stop to land inside it.
struct CallbackRun {
  TempDir dir;
  fs::path config;
  explicit CallbackRun(const std::string& extra) : config(dir / "run.toml") {
    write_file(config, read_file(kSynthetic) + "\n" + extra);
  }
  std::vector<std::string> args(const std::string& out) const {
    return {LOOM_TEST_BIN, "run", config.string(), "--set", "run.output_dir=" + (dir / out).string(), "--set",
            "run.epochs=4", "--set", "dataset.samples=8192", "--set", "loader.batch_size=16"};
  }
  fs::path full() const {
    std::string cmd;
    for (const auto& a : args("full")) cmd += "'" + a + "' ";
    const CommandResult r = run(cmd);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return only_run_dir(dir / "full", "synthetic");
  }
  /// Stopped by SIGTERM inside epoch 2; the interrupted run directory.
  fs::path stopped(const std::string& out) const {
    bool sent = false;
    const int code = run_and_stop_after_first_checkpoint(args(out), dir / out / "synthetic", std::chrono::milliseconds(100), &sent);
    EXPECT_TRUE(sent);
    EXPECT_EQ(code, 143) << "the run ended before the stop (SIGTERM ends it with 143)";
    return only_run_dir(dir / out, "synthetic");
  }
};

/// Swaps the first two [[callback]] tables of a config.resolved.toml.
void swap_callbacks(const fs::path& resolved) {
  const std::string text = read_file(resolved);
  const std::string header = "[[callback]]";
  const size_t a = text.find(header), b = text.find(header, a + 1);
  ASSERT_NE(b, std::string::npos) << text;
  size_t end = text.find("\n[", b + header.size());
  if (end == std::string::npos) end = text.size();
  else ++end;
  std::string first = text.substr(a, b - a), second = text.substr(b, end - b);
  if (!second.empty() && second.back() != '\n') second += '\n';
  write_file(resolved, text.substr(0, a) + second + first + text.substr(end));
}

TEST(StableKeys, CallbacksReorderedBetweenStopAndResumeKeepTheirOwnState) {
  CallbackRun r("[[callback]]\nplugin = \"ema\"\ndecay = 0.99\n\n[[callback]]\nplugin = \"best-checkpoint\"\n");
  const fs::path full = r.full();
  const fs::path part = r.stopped("part");
  ASSERT_FALSE(part.empty());
  swap_callbacks(part / "config.resolved.toml");
  ASSERT_LT(read_file(part / "config.resolved.toml").find("'best-checkpoint'"), read_file(part / "config.resolved.toml").find("'ema'"));
  const CommandResult resumed = loom("run --resume " + part.string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  expect_same_run(full, part, "callbacks reordered");
}

TEST(StableKeys, TwoCallbacksOfOneNameSwappedAreRefusedUnlessTheyHaveIds) {
  const std::string two = "[[callback]]\nplugin = \"ema\"\ndecay = 0.99\n\n[[callback]]\nplugin = \"ema\"\ndecay = 0.9\nevaluate = false\napply_at_end = false\n";
  {
    CallbackRun r(two);
    const fs::path part = r.stopped("part");
    ASSERT_FALSE(part.empty());
    swap_callbacks(part / "config.resolved.toml");
    const CommandResult resumed = loom("run --resume " + part.string());
    EXPECT_EQ(resumed.exit_code, 1) << resumed.output;
    EXPECT_NE(resumed.output.find("callback/ema"), std::string::npos) << resumed.output;
    EXPECT_NE(resumed.output.find("reordered"), std::string::npos) << resumed.output;
    EXPECT_NE(resumed.output.find("id = "), std::string::npos) << resumed.output;
    EXPECT_EQ(resumed.output.find("Exception raised from"), std::string::npos) << resumed.output;
  }
  // With ids the state is matched by id, whatever the order.
  const std::string with_ids = "[[callback]]\nplugin = \"ema\"\nid = \"slow\"\ndecay = 0.99\n\n[[callback]]\nplugin = \"ema\"\n"
                               "id = \"fast\"\ndecay = 0.9\nevaluate = false\napply_at_end = false\n";
  CallbackRun r(with_ids);
  const fs::path full = r.full();
  const fs::path part = r.stopped("part");
  ASSERT_FALSE(part.empty());
  EXPECT_NE(read_file(part / "config.resolved.toml").find("id = 'slow'"), std::string::npos);
  swap_callbacks(part / "config.resolved.toml");
  ASSERT_LT(read_file(part / "config.resolved.toml").find("'fast'"), read_file(part / "config.resolved.toml").find("'slow'"));
  const CommandResult resumed = loom("run --resume " + part.string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  // The evaluated model is the first substitute (the 'slow' one in both orders: 'fast' does not evaluate),
  // and only 'slow' applies its average at the end. Both report ema_decay and ema_updates under the same
  // names, where the later callback's figures win: those follow the table order, not the state.
  expect_same_run(full, part, "callbacks with ids reordered", {"ema_decay", "ema_updates"});
}

TEST(StableKeys, TwoTablesWithOneIdAreRefused) {
  TempDir dir;
  write_file(dir / "run.toml", read_file(kSynthetic) + "\n[[callback]]\nplugin = \"ema\"\nid = \"x\"\n\n[[metric_sink]]\nplugin = \"csv\"\nid = \"x\"\n"
                                                       "\n[[callback]]\nplugin = \"early-stopping\"\nid = \"x\"\n");
  const CommandResult r = loom("check " + (dir / "run.toml").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("id \"x\" is already used by [callback[0]]"), std::string::npos) << r.output;
  write_file(dir / "bad.toml", read_file(kSynthetic) + "\n[[callback]]\nplugin = \"ema\"\nid = \"a/b\"\n");
  const CommandResult bad = loom("check " + (dir / "bad.toml").string());
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("'id' in [callback[0]]"), std::string::npos) << bad.output;
  // An id that is another table's name-derived key: refused when the plugins are created, before any file.
  write_file(dir / "clash.toml", read_file(kSynthetic) + "\n[[callback]]\nplugin = \"ema\"\nid = \"ema\"\n\n[[callback]]\nplugin = \"ema\"\n");
  const CommandResult clash = loom("run " + (dir / "clash.toml").string() + " --set run.output_dir=" + (dir / "out").string());
  EXPECT_EQ(clash.exit_code, 1) << clash.output;
  EXPECT_NE(clash.output.find("[callback[1]] keeps its checkpoint state under 'callback/ema', as [callback[0]]"), std::string::npos)
      << clash.output;
  EXPECT_EQ(count_entries(dir / "out"), 0u);
}

// --- a run killed before it wrote its config ----------------------------------------------------------

/// A pid no process has any more.
pid_t dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

/// What a run killed before it wrote its config (0.3 s after its start, while plugins are created) leaves:
/// its directory with the lock file, naming a pid that is gone. (A real kill that early is a race the test
/// would mostly lose: a small run writes its config within milliseconds.)
fs::path never_started_run(const fs::path& output_dir) {
  const fs::path dir = output_dir / "synthetic" / "20260101-000000";
  fs::create_directories(dir);
  write_file(dir / ".lock", std::to_string(dead_pid()) + "\n");
  return dir;
}

TEST(NeverStarted, ResumeSaysTheRunNeverStartedAndRemovesItsEmptyDirectory) {
  TempDir out;
  const fs::path dir = never_started_run(out.path());
  const CommandResult r = loom("run --resume " + dir.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("never started"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("loom run CONFIG"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("not a run directory"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir));
}

TEST(NeverStarted, TheNextRunRemovesAStaleEmptyRunDirectory) {
  TempDir out;
  const fs::path stale = never_started_run(out.path());
  // A directory whose lock's holder is alive is another run starting: it stays.
  const fs::path starting = out.path() / "synthetic" / "20260101-000001";
  fs::create_directories(starting);
  write_file(starting / ".lock", std::to_string(getpid()) + "\n");
  // Killed between creating its directory and its lock file: empty; removed once it is a minute old.
  const fs::path empty_old = out.path() / "synthetic" / "20260101-000002", empty_new = out.path() / "synthetic" / "20260101-000003";
  fs::create_directories(empty_old);
  fs::create_directories(empty_new);
  fs::last_write_time(empty_old, fs::file_time_type::clock::now() - std::chrono::minutes(2));
  const CommandResult r = loom("run " + kSynthetic + " --set run.output_dir=" + out.path().string() + " --set run.epochs=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(starting));
  EXPECT_FALSE(fs::exists(empty_old));
  EXPECT_TRUE(fs::exists(empty_new));
}

}  // namespace
}  // namespace loom::test
