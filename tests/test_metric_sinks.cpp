// The `jsonl`, `tensorboard` and `csv` metric sinks, created by name through the host Registry from the
// built .so files, writing real files: exact contents, resume truncation (every record exactly once however
// often a run is interrupted), write errors that name the file, and TensorBoard event files read back by
// TensorBoard itself (tests/python/read_tensorboard.py).
#include "test_util.h"

#include "event_writer.h"
#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>

namespace loom::test {
namespace {

MetricRecord record(RecordKind kind, std::string stage, int64_t round, int64_t epoch, int64_t step,
                    std::map<std::string, MetricValue> values) {
  MetricRecord r;
  r.kind = kind;
  r.stage = std::move(stage);
  r.round = round;
  r.epoch = epoch;
  r.step = step;
  r.wall_time = 1700000000.0 + static_cast<double>(step);
  r.values = std::move(values);
  return r;
}
MetricRecord epoch_record(int64_t epoch, double train_loss) {
  return record(RecordKind::Epoch, "supervised", 0, epoch, epoch * 10, {{"train_loss", train_loss}});
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::vector<std::string> lines;
  std::istringstream in(read_file(file));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

class MetricSinks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = std::make_unique<host::Registry>();
    registry_->scan({LOOM_TEST_PLUGIN_DIR});
  }
  static void TearDownTestSuite() { registry_.reset(); }

  std::shared_ptr<MetricSink> sink(const std::string& name, const std::map<std::string, Value>& overrides = {}) {
    const host::Feature* f = registry_->find(Kind::MetricSink, name);
    if (!f) throw std::runtime_error("metric_sink plugin '" + name + "' not built");
    std::map<std::string, Value> values;
    for (const auto& spec : f->info.params)
      if (spec.default_value) values[spec.name] = *spec.default_value;
    for (const auto& [k, v] : overrides) values[k] = v;
    const Params p(values);
    return registry_->create<MetricSink>(*f, CreateContext{p, ctx_, nullptr});
  }
  const fs::path& run_dir() const { return run_dir_; }

  static inline std::unique_ptr<host::Registry> registry_;
  TempDir tmp_;
  fs::path run_dir_ = tmp_ / "run";
  host::HostLogger logger_;
  host::HostRunContext ctx_{logger_, c10::kCPU, 1, 1, run_dir_, tmp_ / "cache"};
};

TEST_F(MetricSinks, RegisteredWithSchemasAndCreateNoFiles) {
  const std::map<std::string, std::vector<std::string>> params = {
      {"jsonl", {"every_n_steps"}}, {"tensorboard", {"dir", "every_n_steps"}}, {"csv", {"every_n_steps"}}};
  for (const auto& [name, expected] : params) {
    SCOPED_TRACE(name);
    const host::Feature* f = registry_->find(Kind::MetricSink, name);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->info.version, "1.0.0");
    std::vector<std::string> names;
    for (const auto& spec : f->info.params) {
      names.push_back(spec.name);
      EXPECT_FALSE(spec.help.empty()) << spec.name;
    }
    EXPECT_EQ(names, expected);
    // The run directory does not exist when sinks are created; a config rejected later leaves nothing.
    const auto s = sink(name);
    EXPECT_FALSE(fs::exists(run_dir()));
  }
  EXPECT_EQ(sink("jsonl")->step_interval(), 0);
  EXPECT_EQ(sink("csv")->step_interval(), 0);
  EXPECT_EQ(sink("tensorboard")->step_interval(), 50);
  EXPECT_EQ(sink("tensorboard", {{"every_n_steps", int64_t{7}}})->step_interval(), 7);
  EXPECT_NE(error_of([&] { sink("tensorboard", {{"dir", std::string("/abs")}}); }).find("relative path"),
            std::string::npos);
}

// ---- jsonl ------------------------------------------------------------------------------------------------

TEST_F(MetricSinks, JsonlWritesOneSortedObjectPerRecord) {
  const auto s = sink("jsonl");
  s->write(record(RecordKind::Event, "setup", 0, 0, 0, {{"dataset/val", int64_t{200}}, {"dataset/labeled", int64_t{1000}}}));
  s->write(record(RecordKind::Epoch, "supervised", 0, 1, 10,
                  {{"train_loss", 0.5}, {"lr", 0.1}, {"val_loss", std::monostate{}}, {"optimizer_steps", int64_t{10}},
                   {"note", std::string("a \"quoted\"\nstring")}}));
  s->write(record(RecordKind::Step, "supervised", 0, 1, 10, {{"train_loss", 0.25}}));  // every_n_steps = 0
  s->write(record(RecordKind::Event, "round1/student", 1, 0, 0, {{"selected_total", int64_t{5}}, {"pseudo_label_accuracy", 0.75}}));
  s->flush();
  EXPECT_EQ(lines_of(run_dir() / "metrics.jsonl"),
            (std::vector<std::string>{
                R"({"dataset/labeled":1000,"dataset/val":200,"round":0,"stage":"setup"})",
                R"({"epoch":1,"lr":0.1,"note":"a \"quoted\"\nstring","optimizer_steps":10,"round":0,"stage":"supervised","train_loss":0.5,"val_loss":null})",
                R"({"pseudo_label_accuracy":0.75,"round":1,"selected_total":5,"stage":"round1/student"})"}));
  EXPECT_FALSE(fs::exists(run_dir() / "steps.jsonl"));
}

TEST_F(MetricSinks, JsonlResumeTruncatesToTheLastFlush) {
  StateDict state;
  {
    const auto s = sink("jsonl", {{"every_n_steps", int64_t{10}}});
    for (int64_t e = 1; e <= 3; ++e) s->write(epoch_record(e, static_cast<double>(e)));
    s->write(record(RecordKind::Step, "supervised", 0, 1, 10, {{"train_loss", 1.0}}));
    s->write(record(RecordKind::Step, "supervised", 0, 1, 15, {{"train_loss", 1.5}}));  // not a multiple of 10
    s->flush();
    state = s->state_dict();
    EXPECT_EQ(state.at("metrics_bytes").item<int64_t>(), static_cast<int64_t>(fs::file_size(run_dir() / "metrics.jsonl")));
    EXPECT_EQ(state.at("steps_bytes").item<int64_t>(), static_cast<int64_t>(fs::file_size(run_dir() / "steps.jsonl")));
    // Written after the checkpoint, then the run dies: these must not survive a resume.
    s->write(epoch_record(4, 444.0));
    s->write(epoch_record(5, 555.0));
    s->write(record(RecordKind::Step, "supervised", 0, 2, 20, {{"train_loss", 222.0}}));
  }
  const auto resumed = sink("jsonl", {{"every_n_steps", int64_t{10}}});
  resumed->load_state_dict(state);
  resumed->write(epoch_record(4, 4.0));
  resumed->write(record(RecordKind::Step, "supervised", 0, 2, 20, {{"train_loss", 2.0}}));
  resumed->flush();

  const auto lines = read_jsonl(run_dir() / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 4u) << read_file(run_dir() / "metrics.jsonl");
  for (int64_t e = 1; e <= 4; ++e) {
    EXPECT_EQ(lines[e - 1]["epoch"], e);
    EXPECT_EQ(lines[e - 1]["train_loss"], static_cast<double>(e));
  }
  EXPECT_EQ(lines_of(run_dir() / "steps.jsonl"),
            (std::vector<std::string>{R"({"epoch":1,"round":0,"stage":"supervised","step":10,"train_loss":1.0})",
                                      R"({"epoch":2,"round":0,"stage":"supervised","step":20,"train_loss":2.0})"}));
}

TEST_F(MetricSinks, JsonlResumeRefusesAMissingOrShorterFile) {
  StateDict state;
  {
    const auto s = sink("jsonl");
    s->write(epoch_record(1, 1.0));
    s->flush();
    state = s->state_dict();
  }
  const fs::path file = run_dir() / "metrics.jsonl";
  fs::resize_file(file, 5);
  std::string error = error_of([&] { sink("jsonl")->load_state_dict(state); });
  EXPECT_NE(error.find(file.string() + " has 5 bytes, fewer than the"), std::string::npos) << error;
  fs::remove(file);
  error = error_of([&] { sink("jsonl")->load_state_dict(state); });
  EXPECT_NE(error.find(file.string() + " is missing"), std::string::npos) << error;
}

TEST_F(MetricSinks, JsonlWriteFailureNamesTheFileAndTheError) {
  fs::create_directories(run_dir());
  fs::create_symlink("/dev/full", run_dir() / "metrics.jsonl");
  const auto s = sink("jsonl");
  const std::string error = error_of([&] { s->write(epoch_record(1, 1.0)); });
  // The free space is the test machine's: only its shape is fixed.
  const std::string expected = "cannot write to " + (run_dir() / "metrics.jsonl").string() + ": No space left on device (needed ";
  EXPECT_EQ(error.substr(0, expected.size()), expected) << error;
  EXPECT_NE(error.find(" free); free some space and run again"), std::string::npos) << error;
}

// ---- tensorboard ------------------------------------------------------------------------------------------

TEST(MetricSinkTensorBoardFormat, Crc32cStandardVector) {
  EXPECT_EQ(tfevents::crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(tfevents::crc32c(""), 0u);
}

// Bytes written by TensorBoard's Python writer (tensorboard 2.21: event_pb2 + RecordWriter) for the same
// events.
TEST(MetricSinkTensorBoardFormat, FramesMatchTensorBoardsOwnWriter) {
  EXPECT_EQ(hex(tfevents::file_version_event(1.0, "brain.Event:2")), "09000000000000f03f1a0d627261696e2e4576656e743a32");
  const std::string event = tfevents::scalars_event(1700000000.5, 3, {{"a/loss", 0.25f}});
  EXPECT_EQ(hex(event), "0900002040fc54d94110032a0f0a0d0a06612f6c6f7373150000803e");
  EXPECT_EQ(hex(tfevents::frame_record(event)),
            "1c00000000000000c8c1951d0900002040fc54d94110032a0f0a0d0a06612f6c6f7373150000803e8329dc19");
}

// {tag: [[step, value], ...]} as TensorBoard's EventAccumulator reads the directory.
nlohmann::json read_tensorboard(const fs::path& dir) {
  const CommandResult py =
      run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR "/tests/python/read_tensorboard.py " + dir.string());
  if (py.exit_code != 0)
    throw std::runtime_error("tests/python/read_tensorboard.py failed (exit " + std::to_string(py.exit_code) +
                             "; the tensorboard package comes from scripts/setup.sh):\n" + py.output);
  // TensorBoard may log to stderr first (no TensorFlow installed); the JSON is the last line.
  const size_t start = py.output.rfind("\n{");
  const nlohmann::json out = nlohmann::json::parse(start == std::string::npos ? py.output : py.output.substr(start + 1));
  EXPECT_EQ(out["file_version"], 2.0);
  return out["scalars"];
}

nlohmann::json points(std::vector<std::pair<int64_t, double>> list) {
  nlohmann::json j = nlohmann::json::array();
  // Values travel as float32 (simple_value); TensorBoard hands back exactly that float.
  for (const auto& [step, value] : list) j.push_back({step, static_cast<double>(static_cast<float>(value))});
  return j;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  return files;
}

TEST_F(MetricSinks, TensorBoardScalarsReadBackByTensorBoard) {
  const auto s = sink("tensorboard");  // every_n_steps = 50
  s->write(record(RecordKind::Event, "setup", 0, 0, 0, {{"dataset/labeled", int64_t{1000}}, {"dataset/name", std::string("x")}}));
  s->write(record(RecordKind::Step, "supervised", 0, 1, 50, {{"train_loss", 0.7}, {"lr", 0.1}, {"grad_norm", 3.25}}));
  s->write(record(RecordKind::Step, "supervised", 0, 1, 75, {{"train_loss", 9.0}}));  // not a multiple of 50
  s->write(record(RecordKind::Epoch, "supervised", 0, 1, 100,
                  {{"train_loss", 0.123456789}, {"val_loss", std::monostate{}}, {"lr", 0.1}, {"threads", int64_t{2}}}));
  s->write(record(RecordKind::Step, "supervised", 0, 2, 150, {{"train_loss", 0.3}, {"lr", 0.05}, {"grad_norm", 1.5}}));
  s->write(record(RecordKind::Epoch, "supervised", 0, 2, 200, {{"train_loss", 0.1}, {"lr", 0.05}, {"threads", int64_t{2}}}));
  s->write(record(RecordKind::Event, "round1/student", 1, 0, 0,
                  {{"pseudo_label_accuracy", 0.9}, {"selected_total", int64_t{500}}, {"selected/3", int64_t{40}}}));
  s->write(record(RecordKind::Event, "test", 1, 0, 0, {{"test_loss", 0.45}, {"test_accuracy", 0.875}}));
  s->flush();

  ASSERT_EQ(event_files(run_dir() / "tensorboard").size(), 1u);
  const std::string name = event_files(run_dir() / "tensorboard")[0].filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  const nlohmann::json expected = {
      {"setup/dataset/labeled", points({{0, 1000}})},
      {"supervised/step/train_loss", points({{50, 0.7}, {150, 0.3}})},
      {"supervised/step/lr", points({{50, 0.1}, {150, 0.05}})},
      {"supervised/step/grad_norm", points({{50, 3.25}, {150, 1.5}})},
      {"supervised/train_loss", points({{1, 0.123456789}, {2, 0.1}})},
      {"supervised/lr", points({{1, 0.1}, {2, 0.05}})},
      {"supervised/threads", points({{1, 2}, {2, 2}})},
      {"round1/student/pseudo_label_accuracy", points({{1, 0.9}})},
      {"round1/student/selected_total", points({{1, 500}})},
      {"round1/student/selected/3", points({{1, 40}})},
      {"test/test_loss", points({{1, 0.45}})},
      {"test/test_accuracy", points({{1, 0.875}})}};
  EXPECT_EQ(read_tensorboard(run_dir() / "tensorboard"), expected);
}

TEST_F(MetricSinks, TensorBoardResumeContinuesTheSameFileWithEveryValueOnce) {
  StateDict state;
  {
    const auto s = sink("tensorboard", {{"dir", std::string("tb/sub")}});
    s->write(epoch_record(1, 1.0));
    s->write(epoch_record(2, 2.0));
    s->flush();
    state = s->state_dict();
    s->write(epoch_record(3, 333.0));  // after the checkpoint: lost with the interrupted run
  }
  const fs::path dir = run_dir() / "tb" / "sub";
  const std::vector<fs::path> files = event_files(dir);
  ASSERT_EQ(files.size(), 1u);
  {
    const auto s = sink("tensorboard", {{"dir", std::string("tb/sub")}});
    s->load_state_dict(state);
    s->write(epoch_record(3, 3.0));
    s->flush();
    state = s->state_dict();
    s->write(epoch_record(4, 444.0));
  }
  const auto s = sink("tensorboard", {{"dir", std::string("tb/sub")}});
  s->load_state_dict(state);
  s->write(epoch_record(4, 4.0));
  s->write(epoch_record(5, 5.0));
  s->flush();

  EXPECT_EQ(event_files(dir), files) << "a resume continues the same file";
  EXPECT_EQ(state.at("bytes").item<int64_t>() + 2 * static_cast<int64_t>(tfevents::frame_record(
                                                        tfevents::scalars_event(0.5, 4, {{"supervised/train_loss", 4.0f}}))
                                                        .size()),
            static_cast<int64_t>(fs::file_size(files[0])));
  EXPECT_EQ(read_tensorboard(dir),
            nlohmann::json({{"supervised/train_loss", points({{1, 1.0}, {2, 2.0}, {3, 3.0}, {4, 4.0}, {5, 5.0}})}}));
}

// ---- csv --------------------------------------------------------------------------------------------------

const std::string kCsvHeader = "kind,stage,round,epoch,step,dataset/labeled,live_val_loss,lr,note,train_loss,val_loss\r\n";

void write_csv_records(MetricSink& s) {
  s.write(record(RecordKind::Event, "setup", 0, 0, 0, {{"dataset/labeled", int64_t{1000}}}));
  s.write(record(RecordKind::Step, "supervised", 0, 1, 5, {{"train_loss", 0.5}, {"lr", 0.01}}));
  s.write(record(RecordKind::Step, "supervised", 0, 1, 7, {{"train_loss", 9.0}}));  // not a multiple of 5
  s.write(record(RecordKind::Epoch, "supervised", 0, 1, 10,
                 {{"train_loss", 0.1}, {"val_loss", std::monostate{}}, {"note", std::string("a, \"b\"\nc")}}));
  s.write(record(RecordKind::Epoch, "supervised", 0, 2, 20, {{"train_loss", 1.0 / 3.0}, {"live_val_loss", 0.25}}));
}

TEST_F(MetricSinks, CsvHasTheUnionOfColumnsAndQuotesPerRfc4180) {
  const auto s = sink("csv", {{"every_n_steps", int64_t{5}}});
  write_csv_records(*s);
  EXPECT_EQ(read_file(run_dir() / "metrics.csv"),
            kCsvHeader +
                "event,setup,0,,,1000,,,,,\r\n"
                "step,supervised,0,1,5,,,0.01,,0.5,\r\n"
                "epoch,supervised,0,1,10,,,,\"a, \"\"b\"\"\nc\",0.1,\r\n"
                "epoch,supervised,0,2,20,,0.25,,,0.3333333333333333,\r\n");
  EXPECT_EQ(std::stod("0.3333333333333333"), 1.0 / 3.0) << "shortest round-trip text";
  EXPECT_FALSE(fs::exists(run_dir() / "metrics.csv.tmp"));
}

TEST_F(MetricSinks, CsvResumeKeepsTheCommittedRowsAndColumns) {
  StateDict state;
  {
    const auto s = sink("csv", {{"every_n_steps", int64_t{5}}});
    write_csv_records(*s);
    s->flush();
    state = s->state_dict();
    EXPECT_EQ(state.at("rows").item<int64_t>(), 4);
    // After the checkpoint: a row with a new column, lost with the interrupted run.
    s->write(record(RecordKind::Epoch, "supervised", 0, 3, 30, {{"train_loss", 0.05}, {"zz_extra", 1.0}}));
  }
  const std::string committed = read_file(run_dir() / "metrics.csv");
  ASSERT_NE(committed.find("zz_extra"), std::string::npos);
  {
    // Resumed and checkpointed again before writing: the file is cut back at that flush.
    const auto s = sink("csv", {{"every_n_steps", int64_t{5}}});
    s->load_state_dict(state);
    s->flush();
    EXPECT_EQ(s->state_dict().at("rows").item<int64_t>(), 4);
    EXPECT_EQ(read_file(run_dir() / "metrics.csv").find("zz_extra"), std::string::npos);
    state = s->state_dict();
  }
  const auto s = sink("csv", {{"every_n_steps", int64_t{5}}});
  s->load_state_dict(state);
  s->write(record(RecordKind::Epoch, "supervised", 0, 3, 30, {{"train_loss", 0.05}}));
  EXPECT_EQ(read_file(run_dir() / "metrics.csv"),
            kCsvHeader +
                "event,setup,0,,,1000,,,,,\r\n"
                "step,supervised,0,1,5,,,0.01,,0.5,\r\n"
                "epoch,supervised,0,1,10,,,,\"a, \"\"b\"\"\nc\",0.1,\r\n"
                "epoch,supervised,0,2,20,,0.25,,,0.3333333333333333,\r\n"
                "epoch,supervised,0,3,30,,,,,0.05,\r\n");

  fs::remove(run_dir() / "metrics.csv");
  const std::string error = error_of([&] { sink("csv")->load_state_dict(state); });
  EXPECT_NE(error.find((run_dir() / "metrics.csv").string() + " is missing"), std::string::npos) << error;
}

TEST_F(MetricSinks, CsvWriteFailureNamesTheFileAndRemovesTheTemporary) {
  const auto s = sink("csv");
  s->write(epoch_record(1, 1.0));
  const std::string before = read_file(run_dir() / "metrics.csv");
  const fs::path tmp = run_dir() / "metrics.csv.tmp";
  fs::create_symlink("/dev/full", tmp);
  const std::string error = error_of([&] { s->write(epoch_record(2, 2.0)); });
  const std::string expected = "cannot write " + (run_dir() / "metrics.csv").string() + ": writing " + tmp.string() +
                               ": No space left on device (needed ";
  EXPECT_EQ(error.substr(0, expected.size()), expected) << error;
  EXPECT_NE(error.find(" free); free some space and run again"), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(fs::symlink_status(tmp)));
  EXPECT_EQ(read_file(run_dir() / "metrics.csv"), before);
  s->write(epoch_record(2, 2.0));
  EXPECT_EQ(lines_of(run_dir() / "metrics.csv").size(), 3u) << "the failed row was not kept";
}

}  // namespace
}  // namespace loom::test
