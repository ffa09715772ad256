// FIFOs for the tests that check a reader refuses them at once (tests/test_io.cpp and others): mkfifo, and a
// watchdog that keeps such a test from hanging when the check regresses.
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

namespace loom::test {

/// Creates a FIFO at `file` (its directory must exist); fails the test when it cannot.
inline void make_fifo(const std::filesystem::path& file) {
  ASSERT_EQ(::mkfifo(file.c_str(), 0644), 0) << "mkfifo " << file << ": " << std::strerror(errno);
}

/// While alive: if a reader is still blocked opening or reading `fifo` after `limit`, a writer opens it and
/// closes it again, so the reader gets end-of-file and the test fails on its result instead of hanging.
class FifoWatchdog {
 public:
  explicit FifoWatchdog(std::filesystem::path fifo, std::chrono::seconds limit = std::chrono::seconds(60))
      : thread_([this, fifo = std::move(fifo), limit] {
          const auto deadline = std::chrono::steady_clock::now() + limit;
          while (!done_ && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          while (!done_) {  // past the deadline: release any blocked reader, every 50 ms until the test ends
            const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
            if (fd >= 0) ::close(fd);
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
        }) {}
  ~FifoWatchdog() {
    done_ = true;
    thread_.join();
  }
  FifoWatchdog(const FifoWatchdog&) = delete;
  FifoWatchdog& operator=(const FifoWatchdog&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace loom::test
