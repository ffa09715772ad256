// Training progress: a live bar on a terminal (rate, ETA, loss), plain periodic log lines otherwise (CI).
#pragma once

#include "cli/log.h"

#include <chrono>
#include <functional>
#include <string>

namespace loom::host {

class Progress {
 public:
  Progress(HostLogger& logger, bool terminal, double log_every_seconds);
  void start(std::string label, int64_t total_batches, int64_t first_batch, std::string unit = "micro-batches");
  /// `loss` is read (a device sync) only when a line is actually drawn; may be empty (no loss shown).
  void update(int64_t batches_done, int64_t samples_done, const std::function<double()>& loss);
  void finish();

 private:
  void draw(bool final_line, double loss);

  HostLogger& logger_;
  bool terminal_;
  double every_;
  std::string label_, unit_;
  int64_t total_ = 0, first_ = 0, done_ = 0, samples_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
  bool active_ = false;
};

/// Whether stderr is an interactive terminal.
bool stderr_is_terminal();

}  // namespace loom::host
