#include "state/metrics.h"

#include "state/durable_file.h"

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
  write_file_atomically(file, value.dump(2) + "\n");
}

}  // namespace loom::host
