#include "npy_cache.h"

#include "cache/common/stored_dataset.h"
#include "common/npy/file_io.h"
#include "common/npy/npy_tensor.h"

#include <algorithm>
#include <chrono>
#include <sstream>
#include <stdexcept>

namespace loom::builtin {
namespace {

namespace fs = std::filesystem;
using namespace npy_cache;

constexpr const char* kWho = "npy cache";

// "cache/npy/0123abcd0123abcd/" names the same directory as ".../0123abcd0123abcd"; the key is its name.
fs::path without_trailing_slash(const fs::path& dir) {
  fs::path p = dir.lexically_normal();
  return p.has_filename() ? p : p.parent_path();
}

}  // namespace

FeatureInfo NpyCache::info() {
  return {.name = "npy",
          .version = "1.0.0",
          .summary = "preprocessed samples in memory-mapped .npy files, keyed by the dataset's fingerprint "
                     "(rebuilt when it changes)",
          .params = {
              ParamSpec::path("dir").doc("directory holding the caches (one <key>/ folder each); default: "
                                         "<[run] cache_dir>/npy"),
              caching::store_dtype_param(),
              ParamSpec::choice("verify", "full", {"full", "size"})
                  .doc("checks when a cache is opened: full = sizes, headers and crc32 of every byte (reads "
                       "the cache once); size = sizes and headers only (instant for huge caches, misses "
                       "flipped bits)"),
          }};
}

NpyCache::NpyCache(const CreateContext& ctx)
    : run_(ctx.run),
      root_(ctx.params.has("dir") ? fs::path(ctx.params.str("dir")) : ctx.run.cache_dir() / "npy"),
      store_dtype_(ctx.params.str("store_dtype")),
      verify_(ctx.params.str("verify") == "size" ? Verify::Size : Verify::Full) {}

caching::StoreFormat NpyCache::format_for(const Dataset& inner) const {
  caching::StoreFormat format(store_dtype_, inner.spec(), kWho);
  try {
    (void)npy::element_type(format.store());
  } catch (const std::exception&) {
    throw std::invalid_argument(std::string(kWho) + ": the dataset's samples are " + format.store_name() +
                                ", which a .npy file cannot hold; set [cache] store_dtype = \"float32\"");
  }
  return format;
}

fs::path NpyCache::location(const Dataset& inner) const {
  return root_ / cache_key(inner.fingerprint(), format_for(inner).store_name());
}

std::string NpyCache::why_building(const fs::path& dir, const std::string& fingerprint,
                                   const std::string& store_dtype) const {
  const std::string head = std::string(kWho) + ": building " + dir.string() + ": ";
  const auto previous = previous_cache(root_, dir.filename().string(), fingerprint);
  if (!previous) return head + "no cache yet";
  const std::string changes =
      describe_changes(fingerprint_inputs(previous->second.fingerprint, previous->second.store_dtype,
                                          previous->second.format_version),
                       fingerprint_inputs(fingerprint, store_dtype, kFormatVersion));
  return head + "the fingerprint changed since " + previous->first.string() + ": " + changes;
}

std::shared_ptr<Dataset> NpyCache::wrap(std::shared_ptr<Dataset> inner) {
  if (!inner) throw std::invalid_argument("npy cache: wrap() needs a dataset");
  caching::StoreFormat format = format_for(*inner);
  format.warn_if_lossy(run_.logger());
  const fs::path dir = location(*inner);
  Expectation expect{.fingerprint = inner->fingerprint(),
                     .store_dtype = format.store_name(),
                     .dtype = caching::dtype_name(format.spec().dtype),
                     .count = inner->size(),
                     .shape = format.spec().shape,
                     .labels = inner->labels()};

  auto serve = [&](OpenResult& opened) -> std::shared_ptr<Dataset> {
    return std::make_shared<caching::StoredDataset>(std::move(inner), std::move(opened.data), std::move(format), kWho);
  };
  OpenResult opened = open_cache(dir, verify_, &expect);
  if (opened.valid()) {
    run_.logger().info(std::string(kWho) + ": using " + dir.string() + " (" + std::to_string(expect.count) +
                       " samples as " + format.store_name() + ")");
    return serve(opened);
  }

  auto lock = std::make_unique<npy::FileLock>(lock_file(dir), /*wait=*/false);
  if (!lock->held()) {
    run_.logger().info(std::string(kWho) + ": another process is building " + dir.string() + "; waiting for it");
    lock = std::make_unique<npy::FileLock>(lock_file(dir));
  }
  // Another process may have finished the same cache while we waited for the lock (or just before it).
  opened = open_cache(dir, verify_, &expect);
  if (opened.valid()) {
    run_.logger().info(std::string(kWho) + ": " + dir.string() + " was built by another process meanwhile");
    return serve(opened);
  }
  // Only the builder explains why, so concurrent runs log it once.
  if (fs::exists(dir))
    run_.logger().warn(std::string(kWho) + ": " + dir.string() + " is invalid (" + opened.problem + "); rebuilding it");
  else
    run_.logger().info(why_building(dir, expect.fingerprint, expect.store_dtype));

  const auto started = std::chrono::steady_clock::now();
  build_cache(dir, *inner, format, run_);
  // The build took its checksums from the bytes on disk; re-reading them all would prove nothing new.
  opened = open_cache(dir, Verify::Size, &expect);
  if (!opened.valid())
    throw std::runtime_error(std::string(kWho) + ": the cache just built at " + dir.string() +
                             " does not validate: " + opened.problem);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::ostringstream msg;
  msg << kWho << ": built " << dir.string() << " (" << expect.count << " samples as " << format.store_name() << ", "
      << caching::human_bytes(opened.data.nbytes()) << ") in " << seconds << " s";
  run_.logger().info(msg.str());
  return serve(opened);
}

std::optional<std::string> NpyCache::inspect(const fs::path& given) const {
  const fs::path dir = without_trailing_slash(given);
  if (looks_like_cache(dir)) return describe(dir, verify_);
  // A folder of caches (such as <cache_dir>/npy): describe each one.
  std::error_code ec;
  std::vector<fs::path> caches;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (looks_like_cache(it->path())) caches.push_back(it->path());
  if (caches.empty()) return std::nullopt;
  std::sort(caches.begin(), caches.end());
  std::string out = std::to_string(caches.size()) + " npy cache" + (caches.size() == 1 ? "" : "s") + " in " +
                    dir.string() + ":\n";
  for (const fs::path& c : caches) {
    out += '\n';  // appended separately: GCC 12 misreports `"\n" + std::string` here (-Wstringop-overflow)
    out += describe(c, verify_);
  }
  return out;
}

void NpyCache::clear(const fs::path& given) const {
  const fs::path dir = without_trailing_slash(given);
  if (!looks_like_cache(dir))
    throw std::runtime_error("'" + dir.string() +
                             "' is not an npy cache directory (a folder named by a 16-hex-digit key holding "
                             "manifest.json and data.npy, as the npy cache writes them); refusing to delete it");
  npy::FileLock lock(lock_file(dir));
  if (fs::exists(dir)) remove_cache(dir);
  // Removed while held: a process waiting on it re-opens the path after locking (FileLock's check).
  std::error_code ec;
  fs::remove(lock.path(), ec);
  run_.logger().info(std::string(kWho) + ": removed " + dir.string());
}

}  // namespace loom::builtin
