// The host's logger: console (stderr) plus, once a run directory exists, the run's log file.
// Implemented with spdlog in log.cpp — the only translation unit that includes spdlog, because LibTorch's
// wheel ships its own fmt headers that must never meet spdlog's external fmt in one TU.
#pragma once

#include <loom/log.h>

#include <filesystem>
#include <memory>

namespace loom::host {

class HostLogger final : public Logger {
 public:
  HostLogger();
  ~HostLogger() override;
  void log(LogLevel level, std::string_view message) override;
  /// Also write to `file` from now on (the run's loom.log); appends.
  void add_file(const std::filesystem::path& file);
  void set_verbose(bool verbose);
  /// A data-parallel rank other than 0: console lines carry "[rank N]" and only warnings and errors show.
  void set_secondary_rank(int rank);
  /// Lines written while a progress bar occupies the terminal's last line must clear it first.
  void set_progress_line_active(bool active);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::host
