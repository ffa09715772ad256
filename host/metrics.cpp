#include "metrics.h"

#include "checkpoint.h"

#include <stdexcept>

namespace loom::host {

MetricsWriter::MetricsWriter(const std::filesystem::path& file) : out_(file, std::ios::app), file_(file) {
  if (!out_) throw std::runtime_error("cannot open " + file.string() + " for writing");
}

void MetricsWriter::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_) throw std::runtime_error("cannot write to " + file_.string());
}

void write_json_file(const std::filesystem::path& file, const nlohmann::json& value) {
  const std::filesystem::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << value.dump(2) << '\n';
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fsync_path(tmp);
  std::filesystem::rename(tmp, file);
}

}  // namespace loom::host
