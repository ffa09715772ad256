// The host's logger, handed to plugins. Plugins never create sinks or global loggers of their own:
// whatever they log lands in the run's log file and on the console with the host's formatting.
#pragma once

#include <string_view>

namespace loom {

enum class LogLevel { Debug, Info, Warn, Error };

class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log(LogLevel level, std::string_view message) = 0;

  void debug(std::string_view m) { log(LogLevel::Debug, m); }
  void info(std::string_view m) { log(LogLevel::Info, m); }
  void warn(std::string_view m) { log(LogLevel::Warn, m); }
  void error(std::string_view m) { log(LogLevel::Error, m); }
};

}  // namespace loom
