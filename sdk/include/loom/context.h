// What the host hands every plugin: the run's settings and services. Plugins keep no globals; anything
// that depends on the run (device, seed, directories, logging) comes from here.
#pragma once

#include <loom/log.h>
#include <loom/params.h>

#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

namespace loom {

class Dataset;

/// Progress of long plugin work (a cache build): a bar on a terminal, periodic log lines otherwise.
class ProgressReporter {
 public:
  virtual ~ProgressReporter() = default;
  /// Adds `done` units; thread-safe, cheap enough to call per chunk.
  virtual void advance(int64_t done) = 0;
  /// Ends the display (also done by the destructor).
  virtual void finish() = 0;
};

/// Run-wide services. Valid for the lifetime of every object the plugin creates.
class RunContext {
 public:
  virtual ~RunContext() = default;
  virtual Logger& logger() = 0;
  /// The device the run trains on ([run] device, with "auto" resolved).
  virtual c10::Device device() const = 0;
  /// [run] seed. Derive every random stream from it (see generator()) so runs are reproducible.
  virtual uint64_t seed() const = 0;
  /// Intra-op threads the run uses ([run] threads).
  virtual int threads() const = 0;
  /// A CPU generator seeded from the run seed and `stream` (e.g. "augment/epoch3"): independent,
  /// reproducible streams without sharing mutable state between plugins.
  virtual at::Generator generator(std::string_view stream) const = 0;
  /// This run's output directory. Empty for commands that do not train (`loom check`, `loom plugins`).
  virtual std::filesystem::path run_dir() const = 0;
  /// Where caches live ([run] cache_dir); shared between runs.
  virtual std::filesystem::path cache_dir() const = 0;
  /// Starts a progress display of `total` units labelled `label`.
  virtual std::unique_ptr<ProgressReporter> progress(std::string_view label, int64_t total) = 0;
};

/// Everything a factory gets. `dataset` is set for kinds that build on the data: the model (to read the
/// sample shape and class count) and the cache (the dataset it will wrap). It is null for a dataset, and
/// for a cache created by `loom cache info|clear DIR` (only inspect()/clear() are called then).
struct CreateContext {
  const Params& params;
  RunContext& run;
  std::shared_ptr<Dataset> dataset;
};

}  // namespace loom
