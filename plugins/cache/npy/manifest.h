// What an npy cache directory records about itself (manifest.json, written last), how its key is
// derived, and how two caches' fingerprint inputs differ (for the "why is it rebuilt" log line).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace loom::builtin::npy_cache {

/// Bump when the layout or the meaning of any file changes: every existing cache is then rebuilt (the
/// version is part of the key, and a manifest of another version is refused).
inline constexpr int kFormatVersion = 1;
inline constexpr const char* kFormatName = "loom-npy-cache";
inline constexpr const char* kPluginName = "npy";
inline constexpr const char* kDataFile = "data.npy";      ///< [N, shape...] in the store dtype
inline constexpr const char* kLabelsFile = "labels.npy";  ///< int64 [N]
inline constexpr const char* kIndexFile = "index.npy";    ///< int64 [N]: dataset index of each row (0..N-1)
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kArrayFiles[] = {kDataFile, kLabelsFile, kIndexFile};

struct FileEntry {
  uint64_t bytes = 0;
  uint32_t crc32 = 0;  ///< zlib's crc32 of the whole file
};

struct Manifest {
  int format_version = kFormatVersion;
  std::string plugin = kPluginName;
  std::string key;
  std::string fingerprint;   ///< the dataset's fingerprint()
  std::string store_dtype;   ///< "uint8", "float16", ... (resolved; never "auto")
  std::string dtype;         ///< what the dataset's load() returns
  int64_t count = 0;
  std::vector<int64_t> shape;  ///< per sample
  std::map<std::string, FileEntry> files;
  std::string created;       ///< UTC, ISO 8601
  std::string sdk_version;

  std::string to_json() const;
  /// Throws std::runtime_error saying which field is missing or malformed.
  static Manifest parse(std::string_view text);
};

/// The first 16 hex digits of SHA-256 over the cache format version, the store dtype and the dataset's
/// fingerprint (which holds its plugin name/version, preprocessing params and source files).
std::string cache_key(const std::string& fingerprint, const std::string& store_dtype);

/// True for a name cache_key() could have produced.
bool is_key(std::string_view name);

/// What the key covers, one item per line of `loom cache info` and per entry of a change report:
/// "format_version=1", "store_dtype=uint8", then the fingerprint's ';'-separated items.
std::vector<std::string> fingerprint_inputs(const std::string& fingerprint, const std::string& store_dtype,
                                            int format_version);

/// The dataset plugin a fingerprint belongs to: its first ';' item up to '/' ("fashion-mnist").
std::string dataset_plugin(const std::string& fingerprint);

/// "normalize=standard → normalize=unit; added x=1; removed y=2": items paired by name (the text before
/// '=', the path before ':' of a file item, the plugin before '/'). Empty when the lists are equal.
std::string describe_changes(const std::vector<std::string>& before, const std::vector<std::string>& after);

/// Now, UTC, ISO 8601 with seconds ("2026-11-27T10:15:02Z").
std::string utc_now();

}  // namespace loom::builtin::npy_cache
