#include "csv_sink.h"

#include "csv_format.h"
#include "metric_sink/common/sink_state.h"

#include <loom/io.h>

#include <charconv>
#include <stdexcept>

namespace loom::builtin {

namespace {

const std::vector<std::string> kFixedColumns = {"kind", "stage", "round", "epoch", "step"};

// Shortest text that reads back as the same double: a spreadsheet or pandas gets the exact value.
std::string cell(const MetricValue& value) {
  if (const auto* d = std::get_if<double>(&value)) {
    char buf[64];
    const auto result = std::to_chars(buf, buf + sizeof(buf), *d);
    return std::string(buf, result.ptr);
  }
  if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  return {};
}

std::string read_all(const std::filesystem::path& file) {
  return io::read_file(file);  // a regular file, checked before reading: a FIFO is refused, never waited on
}

}  // namespace

FeatureInfo CsvSink::info() {
  return {.name = "csv",
          .version = "1.0.0",
          .summary = "metrics.csv in the run directory: one row per epoch and event, a column per metric",
          .params = {ParamSpec::integer("every_n_steps", 0)
                         .at_least(0)
                         .doc("also add a row every N optimizer steps (train_loss, lr, grad_norm; 0: no step rows)")}};
}

CsvSink::CsvSink(const CreateContext& ctx)
    : file_(ctx.run.run_dir() / "metrics.csv"), every_n_steps_(ctx.params.integer("every_n_steps")) {}

void CsvSink::write(const MetricRecord& record) {
  if (record.kind == RecordKind::Step && (every_n_steps_ == 0 || record.step % every_n_steps_ != 0)) return;
  // Events have neither epoch nor step: empty cells say so better than zeros.
  const bool in_epoch = record.kind != RecordKind::Event;
  Row row{.fixed = {to_string(record.kind), record.stage, std::to_string(record.round),
                    in_epoch ? std::to_string(record.epoch) : "", in_epoch ? std::to_string(record.step) : ""},
          .values = {}};
  const std::set<std::string> columns_before = columns_;
  for (const auto& [key, value] : record.values) {
    columns_.insert(key);
    if (std::string text = cell(value); !text.empty()) row.values[key] = std::move(text);
  }
  rows_.push_back(std::move(row));
  try {
    rewrite();
  } catch (...) {
    // The file still shows the rows before this one; so does the sink, should the host go on.
    rows_.pop_back();
    columns_ = columns_before;
    throw;
  }
}

void CsvSink::rewrite() {
  std::vector<std::string> fields = kFixedColumns;
  fields.insert(fields.end(), columns_.begin(), columns_.end());
  std::string text = csv::line(fields);
  for (const Row& row : rows_) {
    fields.assign(row.fixed.begin(), row.fixed.end());
    for (const std::string& column : columns_) {
      auto it = row.values.find(column);
      fields.push_back(it == row.values.end() ? std::string() : it->second);
    }
    text += csv::line(fields);
  }
  io::make_directories(file_.parent_path());
  io::write_file_atomically(file_, text);  // temporary, fsync, rename, directory fsync
  dirty_ = false;
}

void CsvSink::flush() {
  // Every write already replaced the file durably; only a file not written yet (or cut back) is left.
  if (dirty_) rewrite();
  committed_rows_ = rows_.size();
  committed_columns_ = columns_;
}

StateDict CsvSink::state_dict() const {
  const std::vector<std::string> columns(committed_columns_.begin(), committed_columns_.end());
  return {{"rows", sinks::int_tensor(static_cast<int64_t>(committed_rows_))},
          {"columns", sinks::bytes_tensor(csv::line(columns))}};
}

void CsvSink::load_state_dict(const StateDict& state) {
  const auto rows = sinks::state_int(state, "rows", "csv");
  if (!rows) return;
  // The committed header, not the file's: columns that only later (uncommitted) rows brought must go.
  std::set<std::string> columns;
  if (const auto line = sinks::state_bytes(state, "columns", "csv")) {
    const auto parsed = csv::parse(*line);
    if (parsed.size() == 1)
      for (const std::string& c : parsed[0])
        if (!c.empty()) columns.insert(c);
  }
  std::vector<Row> kept;
  if (*rows > 0) {
    if (!std::filesystem::exists(file_))
      throw std::runtime_error("cannot resume: " + file_.string() + " is missing, but the checkpoint recorded " +
                               std::to_string(*rows) + " rows written to it");
    std::vector<std::vector<std::string>> records;
    try {
      records = csv::parse(read_all(file_));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error("cannot resume: " + file_.string() + " is not valid CSV: " + e.what());
    }
    if (records.empty() || records[0].size() < kFixedColumns.size() ||
        !std::equal(kFixedColumns.begin(), kFixedColumns.end(), records[0].begin()))
      throw std::runtime_error("cannot resume: " + file_.string() +
                               " does not start with the header kind,stage,round,epoch,step the csv sink writes");
    const std::vector<std::string>& header = records[0];
    if (static_cast<int64_t>(records.size()) - 1 < *rows)
      throw std::runtime_error("cannot resume: " + file_.string() + " has " + std::to_string(records.size() - 1) +
                               " rows, fewer than the " + std::to_string(*rows) + " the checkpoint recorded");
    for (int64_t r = 1; r <= *rows; ++r) {
      const auto& fields = records[static_cast<size_t>(r)];
      if (fields.size() != header.size())
        throw std::runtime_error("cannot resume: row " + std::to_string(r) + " of " + file_.string() + " has " +
                                 std::to_string(fields.size()) + " fields, the header " +
                                 std::to_string(header.size()));
      Row row;
      std::copy_n(fields.begin(), row.fixed.size(), row.fixed.begin());
      for (size_t j = kFixedColumns.size(); j < fields.size(); ++j)
        if (!fields[j].empty()) row.values[header[j]] = fields[j];
      kept.push_back(std::move(row));
    }
  }
  rows_ = std::move(kept);
  columns_ = committed_columns_ = std::move(columns);
  committed_rows_ = rows_.size();
  dirty_ = true;
}

}  // namespace loom::builtin
