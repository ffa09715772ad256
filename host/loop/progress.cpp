#include "loop/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace loom::host {

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(HostLogger& logger, bool terminal, double log_every_seconds)
    : logger_(logger), terminal_(terminal), every_(log_every_seconds) {}

void Progress::start(std::string label, int64_t total_batches, int64_t first_batch, std::string unit) {
  label_ = std::move(label);
  unit_ = std::move(unit);
  total_ = total_batches;
  first_ = done_ = first_batch;
  samples_ = 0;
  start_ = last_ = std::chrono::steady_clock::now();
  active_ = true;
}

void Progress::update(int64_t batches_done, int64_t samples_done, const std::function<double()>& loss) {
  done_ = batches_done;
  samples_ = samples_done;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since < (terminal_ ? 0.2 : every_)) return;
  last_ = now;
  draw(false, loss ? loss() : std::nan(""));
}

void Progress::finish() {
  if (!active_) return;
  if (terminal_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    logger_.set_progress_line_active(false);
  }
  active_ = false;
}

void Progress::draw(bool, double loss) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(samples_) / elapsed : 0.0;
  const double batch_rate = elapsed > 0 ? static_cast<double>(done_ - first_) / elapsed : 0.0;
  const double eta = batch_rate > 0 ? static_cast<double>(total_ - done_) / batch_rate : 0.0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  char line[256];
  char loss_text[32] = "";
  if (!std::isnan(loss)) std::snprintf(loss_text, sizeof loss_text, "  loss %.4f", loss);
  if (terminal_) {
    constexpr int width = 24;
    const int filled = static_cast<int>(std::lround(frac * width));
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::snprintf(line, sizeof line, "\r\033[K%s [%s] %3.0f%% %lld/%lld  %.0f samples/s  ETA %.0fs%s",
                  label_.c_str(), bar.c_str(), frac * 100.0, static_cast<long long>(done_), static_cast<long long>(total_),
                  rate, eta, loss_text);
    std::fputs(line, stderr);
    std::fflush(stderr);
    logger_.set_progress_line_active(true);
  } else {
    std::snprintf(line, sizeof line, "%s %3.0f%% (%lld/%lld %s)  %.0f samples/s  ETA %.0fs%s",
                  label_.c_str(), frac * 100.0, static_cast<long long>(done_), static_cast<long long>(total_),
                  unit_.c_str(), rate, eta, loss_text);
    logger_.info(line);
  }
}

}  // namespace loom::host
