// The parallel build every sample-storing cache shares: load the whole dataset in chunks on the run's
// threads, convert each chunk to the store format and hand it to a sink that puts it in place.
#pragma once

#include "cache/common/store_format.h"

#include <loom/context.h>
#include <loom/dataset.h>

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace loom::caching {

/// Receives the stored rows [first_row, first_row + rows.size(0)) as a contiguous CPU tensor in the
/// store dtype. Called concurrently from worker threads, always for disjoint rows.
using ChunkSink = std::function<void(int64_t first_row, const at::Tensor& rows)>;

/// Loads every sample of `inner` (rows 0..size()-1, row i = dataset index i) with Dataset::load() — which
/// is thread-safe by contract — on run.threads() worker threads, checks each chunk against the dataset's
/// spec, converts it with `format` and calls `sink`. Shows run.progress(label, size()). The first error of
/// any worker stops the others and is rethrown here, once all workers have stopped.
void build_in_chunks(const Dataset& inner, const StoreFormat& format, RunContext& run, const std::string& label,
                     const ChunkSink& sink);

/// Every sample of `inner` in one CPU tensor [size(), shape...] in format.store(), row i holding dataset
/// index i: allocated in RAM and filled by build_in_chunks (each chunk copied into place).
at::Tensor build_rows(const Dataset& inner, const StoreFormat& format, RunContext& run, const std::string& label);

/// Logs "<who>: <count> samples (<bytes> as <store dtype>)<where> in <seconds since started> s".
void log_build(RunContext& run, const std::string& who, int64_t count, uint64_t bytes, const StoreFormat& format,
               const std::string& where, std::chrono::steady_clock::time_point started);

/// The start of a cache's error for a dataset larger than it may hold: "<who>: the dataset needs <count>
/// samples x <shape> x <element size> bytes (<store dtype>) = <bytes> bytes (<human>), more than "; the
/// cache adds its limit and the fix.
std::string too_large_start(const std::string& who, int64_t count, const SampleSpec& spec, const StoreFormat& format,
                            uint64_t bytes);

}  // namespace loom::caching
