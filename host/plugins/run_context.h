// The host's implementation of loom::RunContext.
#pragma once

#include "cli/log.h"

#include <loom/context.h>

#include <string>

namespace loom::host {

/// 64-bit FNV-1a of a seed and a stream name: independent, reproducible random streams.
uint64_t derive_seed(uint64_t seed, std::string_view stream);

class HostRunContext final : public RunContext {
 public:
  HostRunContext(HostLogger& logger, c10::Device device, uint64_t seed, int threads, std::filesystem::path run_dir,
                 std::filesystem::path cache_dir)
      : logger_(logger), device_(device), seed_(seed), threads_(threads), run_dir_(std::move(run_dir)),
        cache_dir_(std::move(cache_dir)) {}
  Logger& logger() override { return logger_; }
  c10::Device device() const override { return device_; }
  uint64_t seed() const override { return seed_; }
  int threads() const override { return threads_; }
  at::Generator generator(std::string_view stream) const override;
  std::filesystem::path run_dir() const override { return run_dir_; }
  std::filesystem::path cache_dir() const override { return cache_dir_; }
  std::unique_ptr<ProgressReporter> progress(std::string_view label, int64_t total) override;

  HostLogger& host_logger() { return logger_; }

 private:
  HostLogger& logger_;
  c10::Device device_;
  uint64_t seed_;
  int threads_;
  std::filesystem::path run_dir_, cache_dir_;
};

}  // namespace loom::host
