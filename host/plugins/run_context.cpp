#include "plugins/run_context.h"

#include "loop/progress.h"

#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

namespace loom::host {

uint64_t derive_seed(uint64_t seed, std::string_view stream) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(seed >> (8 * i)));
  for (char c : stream) mix(static_cast<unsigned char>(c));
  return h;
}

namespace {

class HostProgressReporter final : public ProgressReporter {
 public:
  HostProgressReporter(HostLogger& logger, std::string_view label, int64_t total)
      : progress_(logger, stderr_is_terminal(), 10.0) {
    progress_.start(std::string(label), total, 0, "samples");
  }
  ~HostProgressReporter() override { finish(); }
  void advance(int64_t done) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_) return;
    done_ += done;
    progress_.update(done_, done_, nullptr);
  }
  void finish() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_) return;
    finished_ = true;
    progress_.finish();
  }

 private:
  std::mutex mutex_;
  Progress progress_;
  int64_t done_ = 0;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<ProgressReporter> HostRunContext::progress(std::string_view label, int64_t total) {
  return std::make_unique<HostProgressReporter>(logger_, label, total);
}

at::Generator HostRunContext::generator(std::string_view stream) const {
  return at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed_, stream));
}

}  // namespace loom::host
