// `csv`: one wide metrics.csv per run for spreadsheets — columns kind, stage, round, epoch, step, then the
// sorted union of every value key seen so far, one row per record.
//
// A key can first appear late (the test's test_accuracy, a plugin's metric from round 2 on), and a CSV
// header cannot grow in place: the whole file is rewritten atomically on every write. It has one row per
// epoch (and event), so this stays cheap; every_n_steps adds step rows and should stay coarse.
#pragma once

#include <loom/library.h>
#include <loom/metric_sink.h>

#include <array>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace loom::builtin {

class CsvSink final : public MetricSink {
 public:
  static FeatureInfo info();
  explicit CsvSink(const CreateContext& ctx);

  int64_t step_interval() const override { return every_n_steps_; }
  void write(const MetricRecord& record) override;
  void flush() override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  // Cells are kept as the text they print as, which is also what a resume reads back from the file.
  struct Row {
    std::array<std::string, 5> fixed;           ///< kind, stage, round, epoch, step
    std::map<std::string, std::string> values;  ///< value key -> cell (absent: empty)
  };
  void rewrite();

  std::filesystem::path file_;
  int64_t every_n_steps_;
  std::vector<Row> rows_;
  std::set<std::string> columns_;
  bool dirty_ = true;  ///< the file does not show rows_ (not written yet, or cut back by a resume)
  size_t committed_rows_ = 0;
  std::set<std::string> committed_columns_;
};

}  // namespace loom::builtin
