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
};

/// Everything a factory gets. `dataset` is set for kinds that build on the data: the model (to read the
/// sample shape and class count) and the cache (the dataset it will wrap). It is null for a dataset.
struct CreateContext {
  const Params& params;
  RunContext& run;
  std::shared_ptr<Dataset> dataset;
};

}  // namespace loom
