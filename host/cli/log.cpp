#include "cli/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <unistd.h>

namespace loom::host {

struct HostLogger::Impl {
  std::shared_ptr<spdlog::logger> logger;
  std::mutex mutex;
  bool progress_active = false;
};

HostLogger::HostLogger() : impl_(std::make_unique<Impl>()) {
  auto console = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  console->set_pattern("[%H:%M:%S] %^%l%$ %v");
  // A private logger object (not registered globally): plugins and tests may create several hosts.
  impl_->logger = std::make_shared<spdlog::logger>("loom", spdlog::sinks_init_list{console});
  impl_->logger->set_level(spdlog::level::info);
  impl_->logger->flush_on(spdlog::level::info);
}

HostLogger::~HostLogger() = default;

void HostLogger::log(LogLevel level, std::string_view message) {
  spdlog::level::level_enum l = spdlog::level::info;
  switch (level) {
    case LogLevel::Debug: l = spdlog::level::debug; break;
    case LogLevel::Info: l = spdlog::level::info; break;
    case LogLevel::Warn: l = spdlog::level::warn; break;
    case LogLevel::Error: l = spdlog::level::err; break;
  }
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (impl_->progress_active) std::fputs("\r\033[K", stderr);
  impl_->logger->log(l, "{}", message);
}

void HostLogger::add_file(const std::filesystem::path& file) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string(), /*truncate=*/false);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %l %v");
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->logger->sinks().push_back(sink);
  // A full disk must not flood the console with spdlog's "*** LOG ERROR ***" lines: say it once.
  impl_->logger->set_error_handler([file](const std::string& what) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      std::fprintf(stderr, "loom: cannot write the log file %s (%s); logging to the console only\n", file.c_str(), what.c_str());
  });
}

void HostLogger::set_verbose(bool verbose) {
  impl_->logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
}

void HostLogger::set_secondary_rank(int rank) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  for (auto& sink : impl_->logger->sinks()) sink->set_pattern("[%H:%M:%S] [rank " + std::to_string(rank) + "] %^%l%$ %v");
  impl_->logger->set_level(spdlog::level::warn);
}

void HostLogger::set_progress_line_active(bool active) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->progress_active = active;
}

}  // namespace loom::host
