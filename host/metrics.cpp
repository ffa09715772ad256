#include "metrics.h"

#include "checkpoint.h"

#include <fstream>
#include <stdexcept>

namespace loom::host {

nlohmann::json to_json(const MetricValue& v) {
  return std::visit(
      [](const auto& x) {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::monostate>)
          return nlohmann::json(nullptr);
        else
          return nlohmann::json(x);
      },
      v);
}

void write_json_file(const std::filesystem::path& file, const nlohmann::json& value) {
  const std::filesystem::path tmp = file.string() + ".tmp";
  try {
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << value.dump(2) << '\n';
      out.flush();
      if (!out) throw std::runtime_error("cannot write " + tmp.string());
    }
    fsync_path(tmp);
    std::filesystem::rename(tmp, file);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

}  // namespace loom::host
