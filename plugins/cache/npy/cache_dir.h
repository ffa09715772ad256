// One npy cache directory, `<dir>/<key>/`: data.npy, labels.npy, index.npy and manifest.json (written
// last). Opening validates it (manifest vs .npy headers vs file sizes, optionally crc32 of every byte);
// building writes a complete directory under a temporary name and renames it into place, so a reader
// sees either no cache or a whole one, never a half-written one.
#pragma once

#include "manifest.h"

#include "cache/common/store_format.h"

#include <loom/context.h>
#include <loom/dataset.h>

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <optional>
#include <string>

namespace loom::builtin::npy_cache {

enum class Verify {
  Full,  ///< sizes, headers and crc32 of every byte (reads the whole cache once per open)
  Size,  ///< sizes and headers only: opening a huge cache is instant, but flipped bits go unnoticed
};

/// What the live dataset says the cache must hold (absent for `loom cache info`, which has no dataset).
struct Expectation {
  std::string fingerprint;
  std::string store_dtype;
  std::string dtype;
  int64_t count = 0;
  std::vector<int64_t> shape;
  at::Tensor labels;  ///< int64 [count]
};

struct OpenResult {
  std::optional<Manifest> manifest;  ///< when manifest.json parsed (even if something else is wrong)
  at::Tensor data;                   ///< the mapped [count, shape...] array; defined only when valid
  std::string problem;               ///< empty when valid: what is wrong, for logs and `loom cache info`
  bool valid() const { return problem.empty(); }
};

/// Opens and validates `dir`. Never throws for a bad cache: every defect is a `problem`.
OpenResult open_cache(const std::filesystem::path& dir, Verify verify, const Expectation* expect);

/// Builds the cache of `inner` at `dir` (whose name is the key) and publishes it. The caller holds the
/// directory's lock. Leftovers of crashed builds of the same key are removed first.
void build_cache(const std::filesystem::path& dir, const Dataset& inner, const caching::StoreFormat& format,
                 RunContext& run);

/// `<parent>/<key>.lock`: the exclusive lock builders and clear() take.
std::filesystem::path lock_file(const std::filesystem::path& dir);

/// True when `dir` looks like one of ours: a directory named by a key, holding manifest.json or one of
/// the array files. Used to refuse deleting or describing anything else.
bool looks_like_cache(const std::filesystem::path& dir);

/// Removes a published cache directory (renamed aside first, so readers that map its files keep them).
/// The caller holds the lock.
void remove_cache(const std::filesystem::path& dir);

/// The most recent other cache under `root` of the same dataset plugin, for the rebuild explanation.
std::optional<std::pair<std::filesystem::path, Manifest>> previous_cache(const std::filesystem::path& root,
                                                                         const std::string& key,
                                                                         const std::string& fingerprint);

/// The human-readable description `loom cache info` prints.
std::string describe(const std::filesystem::path& dir, Verify verify);

}  // namespace loom::builtin::npy_cache
