// The open loop (SDK 0.3), through real `loom` runs: callbacks fire once per event (also across a stop
// and --resume), every plugin call is guarded with the plugin's name, checkpoint format 3 refuses other
// formats, metrics stay duplicate-free across interruptions, and the built-in callbacks and sinks do
// what they promise end to end.
#include "run_util.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <map>
#include <sstream>

namespace loom::test {
namespace {

const std::string kSynthetic = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";
const std::string kThrowingDir = std::string(LOOM_TEST_FIXTURE_DIR) + "/throwing";
const std::string kRecordingDir = std::string(LOOM_TEST_FIXTURE_DIR) + "/recording";

/// `text` with the table `[name]` (up to the next table) replaced by `replacement`.
std::string replace_table(std::string text, const std::string& name, const std::string& replacement) {
  const size_t start = text.find("[" + name + "]\n");
  const size_t end = text.find("\n[", start + 1);
  return text.replace(start, end == std::string::npos ? std::string::npos : end + 1 - start, replacement);
}

/// `loom run` of the synthetic test config with extra TOML appended (callbacks, sinks) and --set's.
struct SyntheticRun {
  TempDir dir;
  explicit SyntheticRun(const std::string& extra_toml = "", const std::string& plugin_dirs = "",
                        const std::vector<std::pair<std::string, std::string>>& tables = {}) {
    std::string text = read_file(kSynthetic);
    for (const auto& [name, replacement] : tables) text = replace_table(text, name, replacement);
    if (!plugin_dirs.empty()) text.replace(text.find("[run]\n"), 6, "[run]\nplugin_paths = [" + plugin_dirs + "]\n");
    write_file(dir / "c.toml", text + "\n" + extra_toml);
  }
  std::vector<std::string> args(const std::string& out, const std::vector<std::string>& sets = {}) const {
    return run_argv(dir / "c.toml", dir / out, sets);
  }
  CommandResult run_to_end(const std::string& out, const std::vector<std::string>& sets = {}) const {
    return run(command_line(args(out, sets)));
  }
  fs::path run_dir(const std::string& out) const { return only_run_dir(dir / out, "synthetic"); }
};

// ---- guarded calls --------------------------------------------------------------------------------

TEST(GuardedCalls, PrecisionStepFailureNamesThePluginAndLeavesAResumableCheckpoint) {
  SyntheticRun r("", quote(kThrowingDir));
  // 29 steps an epoch: step 40 fails inside epoch 2, after epoch 1's checkpoint.
  const CommandResult c = r.run_to_end("out", {"precision.plugin=fixture-throwing", "precision.fail_at_step=40"});
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("precision plugin 'fixture-throwing' (libloom_fixture_throwing.so) failed in step: "
                          "deliberate failure at step 40"),
            std::string::npos)
      << c.output;
  EXPECT_EQ(c.output.find("Exception raised from"), std::string::npos) << "a LibTorch backtrace reached the user";
  EXPECT_TRUE(fs::exists(r.run_dir("out") / "checkpoint.pt"));
}

TEST(GuardedCalls, DatasetLoadFailureOnTheLoaderThreadNamesThePlugin) {
  // The fixture's samples are 1-D: no flip (the synthetic config's [[augmentation]]).
  SyntheticRun r("", quote(kThrowingDir),
                 {{"dataset", "[dataset]\nplugin = \"fixture-throwing\"\nfail_at_load = 3\n"}, {"[augmentation]", ""}});
  const CommandResult c = r.run_to_end("out", {"loader.prefetch=2", "loader.batch_size=8"});
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("dataset plugin 'fixture-throwing' (libloom_fixture_throwing.so) failed in load: "
                          "deliberate failure in load 3"),
            std::string::npos)
      << c.output;
}

TEST(GuardedCalls, ModelForwardFailureNamesThePlugin) {
  SyntheticRun r("", quote(LOOM_TEST_FAULTY_MODEL_DIR),
                 {{"model", "[model]\nplugin = \"fixture-faulty\"\nfailure = \"throw\"\nfail_rank = 0\nfail_at_forward = 5\n"}});
  const CommandResult c = r.run_to_end("out");
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("model plugin 'fixture-faulty' (libloom_fixture_faulty.so) failed in forward: "
                          "fixture-faulty: deliberate failure in forward 5"),
            std::string::npos)
      << c.output;
}

TEST(GuardedCalls, CallbackFailureNamesThePluginAndTheHook) {
  SyntheticRun r("[[callback]]\nplugin = \"recording\"\nfile = \"events.txt\"\nthrow_in = \"validation\"\n",
                 quote(kRecordingDir));
  const CommandResult c = r.run_to_end("out");
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("callback plugin 'recording' (libloom_fixture_recording.so) failed in on_validation_end: "
                          "recording fixture throws in validation"),
            std::string::npos)
      << c.output;
}

// One throwing plugin of every other kind (tests/fixtures/throwing.cpp): each failure names the kind, the
// plugin, its library and the method, whichever part of the host made the call.
struct ThrowingKind {
  std::string name;     ///< the test's name
  std::string extra;    ///< TOML appended to the synthetic config
  std::string message;  ///< what the error must say
};

class GuardedKinds : public ::testing::TestWithParam<ThrowingKind> {};

TEST_P(GuardedKinds, AFailureNamesTheKindThePluginAndTheMethod) {
  const ThrowingKind& k = GetParam();
  SyntheticRun r(k.extra, quote(kThrowingDir), {{"[augmentation]", ""}});
  const CommandResult c = r.run_to_end("out", {"run.epochs=1"});
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find(k.message), std::string::npos) << "expected: " << k.message << "\n" << c.output;
  EXPECT_EQ(c.output.find("Exception raised from"), std::string::npos) << "a LibTorch backtrace reached the user";
}

std::string thrower_error(const std::string& kind, const std::string& method) {
  return kind + " plugin 'fixture-throwing' (libloom_fixture_throwing.so) failed in " + method + ": deliberate failure in " +
         method;
}

INSTANTIATE_TEST_SUITE_P(
    EveryKind, GuardedKinds,
    ::testing::Values(
        ThrowingKind{"accumulation", "[accumulation]\nplugin = \"fixture-throwing\"\n", thrower_error("accumulation", "plan")},
        ThrowingKind{"augmentation", "[[augmentation]]\nplugin = \"fixture-throwing\"\n", thrower_error("augmentation", "apply")},
        ThrowingKind{"cache", "[cache]\nplugin = \"fixture-throwing\"\n", thrower_error("cache", "wrap")},
        ThrowingKind{"callback", "[[callback]]\nplugin = \"fixture-throwing\"\n",
                     thrower_error("callback", "on_train_epoch_end")},
        ThrowingKind{"metric_sink", "[[metric_sink]]\nplugin = \"fixture-throwing\"\n", thrower_error("metric_sink", "write")},
        ThrowingKind{"self_training", "[self_training]\nplugin = \"fixture-throwing\"\n", thrower_error("self_training", "run")},
        ThrowingKind{"communicator", "[communicator]\nplugin = \"fixture-throwing\"\n", thrower_error("communicator", "rank")}),
    [](const ::testing::TestParamInfo<ThrowingKind>& info) { return info.param.name; });

// The dataset reaches the host and other plugins through one adapter (GuardedDataset): each of its methods
// is named in the error, whoever called it (the host, the model's factory, the driver).
class GuardedDatasetMethods : public ::testing::TestWithParam<std::string> {};

TEST_P(GuardedDatasetMethods, EachMethodIsNamed) {
  const std::string method = GetParam();
  SyntheticRun r("", quote(kThrowingDir),
                 {{"dataset", "[dataset]\nplugin = \"fixture-throwing\"\nfail_in = \"" + method + "\"\n"}, {"[augmentation]", ""}});
  const CommandResult c = r.run_to_end("out", {"run.epochs=1", "loader.batch_size=8"});
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find(thrower_error("dataset", method)), std::string::npos) << c.output;
}

INSTANTIATE_TEST_SUITE_P(EveryMethod, GuardedDatasetMethods,
                         ::testing::Values("spec", "size", "indices", "labels", "counters"));

TEST(GuardedCalls, CacheCommandCallsAreNamed) {
  // `loom cache build` asks the npy cache for its location, which reads the dataset's fingerprint.
  SyntheticRun r("[cache]\nplugin = \"npy\"\n", quote(kThrowingDir),
                 {{"dataset", "[dataset]\nplugin = \"fixture-throwing\"\nfail_in = \"fingerprint\"\n"}, {"[augmentation]", ""}});
  const CommandResult c =
      loom("cache build " + quote((r.dir / "c.toml").string()) + " --set " + quote("run.cache_dir=" + (r.dir / "cache").string()));
  EXPECT_NE(c.exit_code, 0) << c.output;
  EXPECT_NE(c.output.find(thrower_error("dataset", "fingerprint")), std::string::npos) << c.output;
}

TEST(GuardedCalls, AStudentModelOfAnotherPluginIsNamedForItsOwnFailure) {
  // [model] is the mlp; the students come from [student_model] = fixture-faulty, which throws in its 3rd
  // training forward: the error must name fixture-faulty, not [model]'s plugin.
  SyntheticRun r("[student_model]\nplugin = \"fixture-faulty\"\nfailure = \"throw\"\nfail_rank = 0\nfail_at_forward = 3\n",
                 quote(LOOM_TEST_FAULTY_MODEL_DIR));
  const CommandResult c =
      r.run_to_end("out", {"run.epochs=1", "dataset.labeled_fraction=0.1", "self_training.plugin=pseudo-label",
                           "self_training.rounds=1", "self_training.k=50"});
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("model plugin 'fixture-faulty' (libloom_fixture_faulty.so) failed in forward: "
                          "fixture-faulty: deliberate failure in forward 3"),
            std::string::npos)
      << c.output;
  EXPECT_EQ(c.output.find("model plugin 'mlp'"), std::string::npos) << c.output;
}

// ---- checkpoint format 3 --------------------------------------------------------------------------

TEST(CheckpointFormat, AFormat1CheckpointIsRefusedNamingBothVersions) {
  SyntheticRun r;
  ASSERT_EQ(r.run_to_end("out", {"run.epochs=1"}).exit_code, 0);
  const fs::path dir = r.run_dir("out");
  torch::serialize::OutputArchive old;  // Loom 0.2's layout: positional vectors, no format entry
  old.write("position/stage", c10::IValue(std::string("supervised")));
  old.write("position/ints", c10::IValue(std::vector<int64_t>{0, 1, 0, 0, 29, 0, 0}));
  old.save_to((dir / "checkpoint.pt").string());
  fs::remove(dir / "checkpoint.sha256");  // Loom 0.2 wrote no checksum files
  fs::remove(dir / "checkpoint.prev.pt");
  fs::remove(dir / "checkpoint.prev.sha256");
  const CommandResult c = loom("run --resume " + dir.string());
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("checkpoint.pt is checkpoint format 1 (written by Loom 0.1 or 0.2); this Loom (0.6.0) reads "
                          "formats 2 to 3 only"),
            std::string::npos)
      << c.output;
}

TEST(CheckpointFormat, ADamagedCheckpointIsRefusedWithoutABacktrace) {
  SyntheticRun r;
  ASSERT_EQ(r.run_to_end("out", {"run.epochs=1"}).exit_code, 0);
  const fs::path dir = r.run_dir("out");
  fs::resize_file(dir / "checkpoint.pt", 100);
  const CommandResult c = loom("run --resume " + dir.string());
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("checkpoint.pt is unusable: its bytes do not match the checksum written with it"),
            std::string::npos)
      << c.output;
  EXPECT_NE(c.output.find("No usable checkpoint is left; start the run over with: loom run"), std::string::npos) << c.output;
  EXPECT_EQ(c.output.find("Exception raised from"), std::string::npos) << c.output;
}

// ---- hooks, exactly once --------------------------------------------------------------------------

const std::string kRecording = "[[callback]]\nplugin = \"recording\"\nfile = \"@FILE@\"\n";

std::string recording(const fs::path& file) {
  std::string s = kRecording;
  s.replace(s.find("@FILE@"), 6, file.string());
  return s;
}

TEST(Callbacks, HooksFireInOrderExactlyOnceAcrossAStopAndResumeWithAccumulation) {
  TempDir events;
  const std::vector<std::string> sets = {"run.epochs=4", "dataset.samples=8192", "loader.batch_size=16",
                                         "accumulation.plugin=fixed", "accumulation.steps=3"};
  SyntheticRun a(recording(events / "a.txt"), quote(kRecordingDir));
  ASSERT_EQ(a.run_to_end("out", sets).exit_code, 0);
  SyntheticRun b(recording(events / "b.txt"), quote(kRecordingDir));
  bool stopped = false;
  const int code = run_and_stop_after_first_checkpoint(b.args("out", sets), b.dir / "out" / "synthetic",
                                                       std::chrono::milliseconds(150), &stopped);
  ASSERT_TRUE(stopped);
  ASSERT_EQ(code, 143);
  const CommandResult resumed = loom("run --resume " + b.run_dir("out").string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;

  const auto expected = lines_of(events / "a.txt");
  std::vector<std::string> actual;
  int resumes = 0;
  for (const auto& line : lines_of(events / "b.txt")) {
    if (line.rfind("resume ", 0) == 0) ++resumes;
    else actual.push_back(line);
  }
  EXPECT_EQ(resumes, 1);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(expected.front().rfind("stage_start supervised 4 ", 0), 0u) << expected.front();
  EXPECT_EQ(expected.back(), "stage_end supervised");
  int steps = 0, validations = 0;
  for (const auto& line : expected) steps += line.rfind("step ", 0) == 0, validations += line.rfind("validation ", 0) == 0;
  EXPECT_EQ(validations, 4);
  const auto metrics = read_epoch_records(a.run_dir("out") / "metrics.jsonl");
  EXPECT_EQ(steps, metrics.back()["optimizer_steps"].get<int>()) << "one step event per applied optimizer step";
  EXPECT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < std::min(actual.size(), expected.size()); ++i)
    if (actual[i] != expected[i]) {
      ADD_FAILURE() << "event " << i << " differs: " << actual[i] << " vs " << expected[i];
      break;
    }
  expect_same_weights(a.run_dir("out") / "model.pt", b.run_dir("out") / "model.pt");
}

TEST(Callbacks, AStopRequestEndsTheStageAndIsRecorded) {
  TempDir events;
  SyntheticRun r(recording(events / "e.txt") + "stop_at_epoch = 2\n", quote(kRecordingDir));
  const CommandResult c = r.run_to_end("out", {"run.epochs=5"});
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_EQ(read_epoch_records(r.run_dir("out") / "metrics.jsonl").size(), 2u);
  const auto summary = nlohmann::json::parse(read_file(r.run_dir("out") / "summary.json"));
  EXPECT_EQ(summary["supervised/stopped"], "recording: stop at epoch 2") << summary.dump(2);
  EXPECT_EQ(summary["epochs"], 2);
  EXPECT_EQ(lines_of(events / "e.txt").back(), "stage_end supervised");
}

TEST(Callbacks, TrainEpochEndGetsTheLiveModelBeforeValidationOnTheEvaluatedOne) {
  // ema first: validation (and on_validation_end) runs on the average, on_train_epoch_end on the live model.
  TempDir events;
  SyntheticRun r("[[callback]]\nplugin = \"ema\"\ndecay = 0.9\n" + recording(events / "e.txt") + "hooks = \"all\"\n",
                 quote(kRecordingDir));
  const CommandResult c = r.run_to_end("out", {"run.epochs=2"});
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const auto lines = lines_of(events / "e.txt");
  std::vector<std::string> order;  // hook names per epoch, steps left out
  std::vector<double> live, evaluated;
  for (const auto& line : lines) {
    const std::string hook = line.substr(0, line.find(' '));
    if (hook == "step") continue;
    order.push_back(hook);
    if (hook == "train_epoch_end") live.push_back(std::stod(line.substr(line.rfind(' ') + 1)));
    if (hook == "validation_model") evaluated.push_back(std::stod(line.substr(line.rfind(' ') + 1)));
  }
  const std::vector<std::string> expected = {"stage_start",     "train_epoch_end", "validation", "validation_model",
                                             "train_epoch_end", "validation",      "validation_model", "stage_end"};
  EXPECT_EQ(order, expected);
  ASSERT_EQ(live.size(), 2u);
  ASSERT_EQ(evaluated.size(), 2u);
  for (size_t e = 0; e < 2; ++e) EXPECT_NE(live[e], evaluated[e]) << "epoch " << e + 1 << ": the live model is not the average";
  // The live weights at the last epoch's end are the stage's live weights, which the host keeps beside the
  // averaged ones when a callback substitutes an eval model.
  double kept = 0.0;
  for (const auto& [name, t] : load_weights(r.run_dir("out") / "stages" / "supervised.live.pt"))
    if (name.find("running_") == std::string::npos && name.find("num_batches") == std::string::npos)
      kept += t.to(torch::kDouble).sum().item<double>();
  EXPECT_NEAR(live[1], kept, 1e-6 * std::max(1.0, std::abs(kept)));
}

TEST(Callbacks, ControlSetsAndScalesTheLearningRate) {
  // lr_scale 0.5 from the stage's start; from epoch 2's end on a constant 0.003 replaces the schedule.
  TempDir events;
  SyntheticRun r(recording(events / "e.txt") + "lr_scale = 0.5\nset_lr_after_epoch = 2\nlr = 0.003\n",
                 quote(kRecordingDir));
  SyntheticRun plain(recording(events / "plain.txt"), quote(kRecordingDir));
  const std::vector<std::string> sets = {"run.epochs=3", "lr_schedule.name=cosine"};
  ASSERT_EQ(r.run_to_end("out", sets).exit_code, 0);
  ASSERT_EQ(plain.run_to_end("out", sets).exit_code, 0);
  auto step_lrs = [](const fs::path& file) {
    std::vector<std::pair<int, double>> out;  // (epoch, lr)
    for (const auto& line : lines_of(file)) {
      if (line.rfind("step ", 0) != 0) continue;
      std::istringstream in(line);
      std::string hook, stage;
      int epoch = 0, step = 0;
      double lr = 0.0;
      in >> hook >> stage >> epoch >> step >> lr;
      out.emplace_back(epoch, lr);
    }
    return out;
  };
  const auto scaled = step_lrs(events / "e.txt"), scheduled = step_lrs(events / "plain.txt");
  ASSERT_EQ(scaled.size(), scheduled.size());
  ASSERT_FALSE(scaled.empty());
  for (size_t i = 0; i < scaled.size(); ++i) {
    if (scaled[i].first <= 2)
      // the recording prints 9 significant digits
      EXPECT_NEAR(scaled[i].second, 0.5 * scheduled[i].second, 1e-8 * scheduled[i].second) << "step " << i + 1;
    else
      EXPECT_EQ(scaled[i].second, 0.003) << "step " << i + 1;
  }
  const auto epochs = read_epoch_records(r.run_dir("out") / "metrics.jsonl");
  ASSERT_EQ(epochs.size(), 3u);
  EXPECT_EQ(epochs[2]["lr"].get<double>(), 0.003) << "the epoch's lr metric reports the rate in use";
}

// ---- bookkeeping across interruptions -------------------------------------------------------------

TEST(Metrics, NoDuplicateOrMissingRecordsAfterThreeInterruptions) {
  const std::vector<std::string> sets = {"run.epochs=6", "dataset.samples=32768", "loader.batch_size=8"};
  SyntheticRun a, b;
  ASSERT_EQ(a.run_to_end("out", sets).exit_code, 0);
  // Start, then stop three times at the next checkpoint each time (SIGTERM, SIGINT, SIGTERM: the exit
  // status is 128 + the signal), then finish.
  bool stopped = false;
  ASSERT_EQ(run_and_stop_after_first_checkpoint(b.args("out", sets), b.dir / "out" / "synthetic",
                                                std::chrono::milliseconds(100), &stopped),
            143);
  const fs::path dir = b.run_dir("out");
  for (int i = 0; i < 2; ++i) {
    const auto before = fs::last_write_time(dir / "checkpoint.pt");
    const int code = run_and_stop_when({LOOM_TEST_BIN, "run", "--resume", dir.string()},
                                       [&] {
                                         // checkpoint.pt is briefly absent while the generations rotate.
                                         std::error_code ec;
                                         const auto now = fs::last_write_time(dir / "checkpoint.pt", ec);
                                         return !ec && now != before;
                                       },
                                       std::chrono::milliseconds(100), &stopped,
                                       [i](pid_t pid) { kill(pid, i == 0 ? SIGINT : SIGTERM); });
    ASSERT_TRUE(stopped);
    ASSERT_EQ(code, i == 0 ? 130 : 143) << "interruption " << i + 2 << (i == 0 ? " (SIGINT)" : " (SIGTERM)");
  }
  const CommandResult last = loom("run --resume " + dir.string());
  ASSERT_EQ(last.exit_code, 0) << last.output;

  const auto ma = read_jsonl(a.run_dir("out") / "metrics.jsonl"), mb = read_jsonl(dir / "metrics.jsonl");
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    EXPECT_EQ(ma[i]["stage"], mb[i]["stage"]);
    EXPECT_EQ(ma[i].value("epoch", 0), mb[i].value("epoch", 0));
    if (!ma[i].contains("epoch")) continue;
    EXPECT_EQ(ma[i]["optimizer_steps_in_epoch"], mb[i]["optimizer_steps_in_epoch"]) << "epoch " << i + 1;
    EXPECT_DOUBLE_EQ(ma[i]["train_loss"].get<double>(), mb[i]["train_loss"].get<double>()) << "epoch " << i + 1;
  }
  const auto sa = nlohmann::json::parse(read_file(a.run_dir("out") / "summary.json"));
  const auto sb = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_EQ(sb["epochs"], sa["epochs"]);
  EXPECT_EQ(sb["optimizer_steps"], sa["optimizer_steps"]);
  EXPECT_DOUBLE_EQ(sb["test_accuracy"].get<double>(), sa["test_accuracy"].get<double>());
}

// ---- built-in callbacks and sinks, end to end -------------------------------------------------------

TEST(BuiltinCallbacks, EmaEvaluatesAndSavesTheAverageAndReportsBothAccuracies) {
  SyntheticRun r("[[callback]]\nplugin = \"ema\"\ndecay = 0.99\n");
  const CommandResult c = r.run_to_end("out");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const fs::path dir = r.run_dir("out");
  const auto metrics = read_epoch_records(dir / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_TRUE(metrics[0].contains("live_val_accuracy"));
  EXPECT_TRUE(metrics[0].contains("val_accuracy"));
  EXPECT_EQ(metrics[2]["ema_updates"], metrics[2]["optimizer_steps"]);
  EXPECT_TRUE(fs::exists(dir / "model_ema.pt"));
  expect_same_weights(dir / "model_ema.pt", dir / "model.pt");  // apply_at_end: the stage's result is the average
}

TEST(BuiltinCallbacks, EmaSkipsTheStepsAmpFp16Skipped) {
  SyntheticRun r("[[callback]]\nplugin = \"ema\"\n");
  const CommandResult c = r.run_to_end("out", {"run.epochs=1", "precision.plugin=amp-fp16", "precision.init_scale=1073741824.0"});
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const auto m = read_epoch_records(r.run_dir("out") / "metrics.jsonl");
  ASSERT_EQ(m.size(), 1u);
  ASSERT_GT(m[0]["skipped_steps"].get<double>(), 0.0) << m[0].dump();
  EXPECT_EQ(m[0]["ema_updates"], m[0]["optimizer_steps"]) << m[0].dump();
  EXPECT_EQ(m[0]["optimizer_steps"].get<int>() + static_cast<int>(m[0]["skipped_steps"].get<double>()), 29);
}

TEST(BuiltinCallbacks, EarlyStoppingStopsAtTheRightEpoch) {
  // train_loss falls every epoch, so with mode = "max" epoch 1 stays best: patience 2 stops after epoch 3.
  SyntheticRun r("[[callback]]\nplugin = \"early-stopping\"\nmonitor = \"train_loss\"\nmode = \"max\"\npatience = 2\n");
  const CommandResult c = r.run_to_end("out", {"run.epochs=6"});
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_EQ(read_epoch_records(r.run_dir("out") / "metrics.jsonl").size(), 3u);
  const auto summary = nlohmann::json::parse(read_file(r.run_dir("out") / "summary.json"));
  EXPECT_EQ(summary["supervised/stopped_epoch"], 3) << summary.dump(2);
}

TEST(BuiltinCallbacks, BestCheckpointKeepsTopKAndTestOnBestTestsTheBestWeights) {
  SyntheticRun r("[[callback]]\nplugin = \"best-checkpoint\"\nmonitor = \"val_loss\"\nsave_top_k = 2\n");
  const CommandResult c = r.run_to_end("out", {"run.epochs=4", "run.test_on=best"});
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const fs::path dir = r.run_dir("out");
  size_t kept = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir / "checkpoints")) kept += e.is_regular_file();
  EXPECT_EQ(kept, 2u);
  const auto summary = nlohmann::json::parse(read_file(dir / "summary.json"));
  const auto metrics = read_epoch_records(dir / "metrics.jsonl");
  int best = 0;
  for (size_t i = 1; i < metrics.size(); ++i)
    if (metrics[i]["val_loss"].get<double>() < metrics[static_cast<size_t>(best)]["val_loss"].get<double>()) best = static_cast<int>(i);
  EXPECT_EQ(summary["best_epoch"], best + 1) << summary.dump(2);
  EXPECT_EQ(summary["test_on"], "best");
  expect_same_weights(dir / "best.pt", dir / "model.pt");
}

TEST(BuiltinCallbacks, TestOnBestWithoutABestKeeperIsRefusedBeforeTraining) {
  // With no [[callback]] at all the config is wrong on its face: the config check (and `loom check`) says so.
  SyntheticRun none;
  CommandResult c = none.run_to_end("out", {"run.test_on=best"});
  EXPECT_EQ(c.exit_code, 2) << c.output;
  EXPECT_NE(c.output.find("'test_on' in [run] is \"best\", which needs a [[callback]] that keeps a best model"),
            std::string::npos)
      << c.output;
  EXPECT_EQ(count_entries(none.dir / "out"), 0u) << "nothing may be written";
  // Callbacks that keep no best model are known only once created: the run refuses before training.
  SyntheticRun ema("[[callback]]\nplugin = \"ema\"\n");
  c = ema.run_to_end("out", {"run.test_on=best"});
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("test_on = \"best\" needs a [[callback]] that keeps a best model"), std::string::npos) << c.output;
  EXPECT_EQ(count_entries(ema.dir / "out"), 0u) << "nothing may be written";
}

TEST(BuiltinSinks, TensorBoardEventFilesEqualMetricsJsonl) {
  SyntheticRun r("[[metric_sink]]\nplugin = \"tensorboard\"\nevery_n_steps = 10\n");
  const CommandResult c = r.run_to_end("out");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const fs::path dir = r.run_dir("out");
  const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR "/tests/python/read_tensorboard.py " +
                               (dir / "tensorboard").string());
  ASSERT_EQ(py.exit_code, 0) << py.output;
  const auto scalars = nlohmann::json::parse(py.output)["scalars"];
  size_t compared = 0;
  for (const auto& record : read_epoch_records(dir / "metrics.jsonl")) {
    for (const auto& [key, value] : record.items()) {
      if (!value.is_number() || key == "epoch" || key == "round") continue;
      const std::string tag = record["stage"].get<std::string>() + "/" + key;
      ASSERT_TRUE(scalars.contains(tag)) << tag;
      bool found = false;
      for (const auto& point : scalars[tag])
        if (point[0] == record["epoch"]) {
          EXPECT_FLOAT_EQ(point[1].get<float>(), value.get<float>()) << tag;
          found = true;
        }
      EXPECT_TRUE(found) << tag << " at epoch " << record["epoch"];
      ++compared;
    }
  }
  EXPECT_GT(compared, 20u);
  EXPECT_TRUE(scalars.contains("supervised/step/train_loss"));
  EXPECT_TRUE(scalars.contains("test/test_accuracy"));
}

TEST(CheckDeep, CreatesEveryPluginWritesNothingAndReportsDataErrors) {
  SyntheticRun r("[[callback]]\nplugin = \"ema\"\n[[metric_sink]]\nplugin = \"tensorboard\"\n");
  const CommandResult ok = loom("check --deep " + (r.dir / "c.toml").string() + " --set run.output_dir=" + (r.dir / "out").string());
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("every plugin created"), std::string::npos) << ok.output;
  EXPECT_NE(ok.output.find("callback=ema"), std::string::npos) << ok.output;
  EXPECT_NE(ok.output.find("metric_sink=jsonl+tensorboard"), std::string::npos) << ok.output;
  EXPECT_FALSE(fs::exists(r.dir / "out"));
  // A data error shows at check time with --deep (plain check validates only the config).
  write_file(r.dir / "f.toml", "[dataset]\nplugin = \"fashion-mnist\"\nroot = \"" + (r.dir / "nowhere").string() +
                                   "\"\n[model]\nplugin = \"mlp\"\n");
  EXPECT_EQ(loom("check " + (r.dir / "f.toml").string()).exit_code, 0);
  const CommandResult deep = loom("check --deep " + (r.dir / "f.toml").string());
  EXPECT_EQ(deep.exit_code, 1) << deep.output;
  EXPECT_NE(deep.output.find("dataset plugin 'fashion-mnist'"), std::string::npos) << deep.output;
  EXPECT_NE(deep.output.find("nowhere"), std::string::npos) << deep.output;
}

}  // namespace
}  // namespace loom::test
