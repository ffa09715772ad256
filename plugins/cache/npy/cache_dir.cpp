#include "cache_dir.h"

#include "cache/common/chunked_build.h"
#include "common/npy/file_io.h"
#include "common/npy/npy.h"
#include "common/npy/npy_tensor.h"

#include <loom/abi.h>
#include <loom/io.h>

#include <ATen/ATen.h>
#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

namespace loom::builtin::npy_cache {
namespace {

namespace fs = std::filesystem;

uint32_t crc32_of(const npy::MappedFile& file) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(file.data());
  size_t left = file.size();
  while (left > 0) {  // zlib's length is a uInt: feed it at most 1 GiB at a time
    const uInt step = static_cast<uInt>(std::min<size_t>(left, size_t{1} << 30));
    crc = ::crc32(crc, p, step);
    p += step;
    left -= step;
  }
  return static_cast<uint32_t>(crc);
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// A manifest lists a handful of files: anything near this size is not one.
constexpr uint64_t kMaxManifestBytes = 16 << 20;

std::optional<npy::ElementType> element_type_named(const std::string& name) {
  for (c10::ScalarType t : {at::kBool, at::kByte, at::kChar, at::kShort, at::kInt, at::kLong, at::kHalf, at::kFloat,
                            at::kDouble})
    if (caching::dtype_name(t) == name) return npy::element_type(t);
  return std::nullopt;
}

std::string shape_of(const std::vector<int64_t>& shape) { return caching::shape_text(shape); }

uint64_t bytes_on_disk(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

std::string tag() { return "-" + std::to_string(::getpid()); }

// Checks one array file against its manifest entry and the header it must have; returns the mapping.
std::shared_ptr<const npy::MappedFile> check_array(const fs::path& dir, const char* name, const Manifest& m,
                                                   npy::ElementType type, const std::vector<int64_t>& shape,
                                                   Verify verify, npy::Header* header, std::string* problem) {
  const auto entry = m.files.find(name);
  if (entry == m.files.end()) {
    *problem = std::string("manifest.json has no entry for ") + name;
    return nullptr;
  }
  const fs::path file = dir / name;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) {
    *problem = std::string(name) + " is missing";
    return nullptr;
  }
  std::shared_ptr<const npy::MappedFile> mapping;  // refuses a FIFO or a device (io::ReadError) before mapping
  try {
    mapping = std::make_shared<const npy::MappedFile>(file);
  } catch (const std::exception& e) {
    *problem = e.what();
    return nullptr;
  }
  if (mapping->size() != entry->second.bytes) {
    *problem = std::string(name) + " is " + std::to_string(mapping->size()) + " bytes but manifest.json says " +
               std::to_string(entry->second.bytes) + " (truncated or overwritten)";
    return nullptr;
  }
  try {
    *header = npy::parse_header(std::string_view(reinterpret_cast<const char*>(mapping->data()), mapping->size()), file);
  } catch (const std::exception& e) {
    *problem = e.what();
    return nullptr;
  }
  if (header->type != type || header->shape != shape) {
    *problem = std::string(name) + " holds " + std::string(npy::descr(header->type)) + " " +
               npy::shape_string(header->shape) + ", manifest.json says " + std::string(npy::descr(type)) + " " +
               npy::shape_string(shape);
    return nullptr;
  }
  if (header->data_offset + header->data_bytes() != mapping->size()) {
    *problem = std::string(name) + " is " + std::to_string(mapping->size()) + " bytes but its header describes " +
               std::to_string(header->data_offset + header->data_bytes());
    return nullptr;
  }
  if (verify == Verify::Full) {
    const uint32_t crc = crc32_of(*mapping);
    if (crc != entry->second.crc32) {
      *problem = std::string(name) + " fails its checksum (crc32 " + hex32(crc) + ", manifest.json says " +
                 hex32(entry->second.crc32) + "): its bytes changed after the cache was built";
      return nullptr;
    }
  }
  return mapping;
}

// What differs between a cache's manifest and what the live dataset needs; empty if nothing.
std::string mismatch(const Manifest& m, const Expectation& e) {
  if (m.fingerprint != e.fingerprint || m.store_dtype != e.store_dtype)
    return "it was built from other inputs: " +
           describe_changes(fingerprint_inputs(m.fingerprint, m.store_dtype, m.format_version),
                            fingerprint_inputs(e.fingerprint, e.store_dtype, kFormatVersion));
  if (m.dtype != e.dtype) return "it holds " + m.dtype + " samples, the dataset's load() returns " + e.dtype;
  if (m.count != e.count)
    return "it holds " + std::to_string(m.count) + " samples, the dataset has " + std::to_string(e.count);
  if (m.shape != e.shape) return "it holds samples of shape " + shape_of(m.shape) + ", the dataset's are " + shape_of(e.shape);
  return {};
}

}  // namespace

fs::path lock_file(const fs::path& dir) { return dir.parent_path() / (dir.filename().string() + ".lock"); }

OpenResult open_cache(const fs::path& dir, Verify verify, const Expectation* expect) {
  OpenResult r;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    r.problem = "no cache directory";
    return r;
  }
  const fs::path manifest_file = dir / kManifestFile;
  if (!fs::exists(fs::symlink_status(manifest_file, ec))) {
    r.problem = "manifest.json is missing (the build did not finish)";
    return r;
  }
  std::string manifest_text;
  try {
    manifest_text = io::read_file(manifest_file, kMaxManifestBytes, "cache manifest");  // a regular file, bounded
  } catch (const io::Error& e) {
    r.problem = std::string("manifest.json is unreadable: ") + e.what();
    return r;
  }
  try {
    r.manifest = Manifest::parse(manifest_text);
  } catch (const std::exception& e) {
    r.problem = std::string("manifest.json is corrupt: ") + e.what();
    return r;
  }
  const Manifest& m = *r.manifest;
  if (m.plugin != kPluginName) {
    r.problem = "manifest.json was written by cache plugin '" + m.plugin + "', not 'npy'";
    return r;
  }
  if (m.format_version != kFormatVersion) {
    r.problem = "cache format version " + std::to_string(m.format_version) + "; this plugin reads version " +
                std::to_string(kFormatVersion);
    return r;
  }
  if (m.count < 0 || std::any_of(m.shape.begin(), m.shape.end(), [](int64_t d) { return d < 0; })) {
    r.problem = "manifest.json has a negative count or shape";
    return r;
  }
  if (expect) {
    r.problem = mismatch(m, *expect);
    if (!r.valid()) return r;
  }
  const auto store = element_type_named(m.store_dtype);
  if (!store) {
    r.problem = "manifest.json names an unknown store dtype '" + m.store_dtype + "'";
    return r;
  }

  std::vector<int64_t> data_shape = {m.count};
  data_shape.insert(data_shape.end(), m.shape.begin(), m.shape.end());
  npy::Header data_header, labels_header, index_header;
  auto data = check_array(dir, kDataFile, m, *store, data_shape, verify, &data_header, &r.problem);
  if (!data) return r;
  auto labels = check_array(dir, kLabelsFile, m, npy::ElementType::Int64, {m.count}, verify, &labels_header, &r.problem);
  if (!labels) return r;
  auto index = check_array(dir, kIndexFile, m, npy::ElementType::Int64, {m.count}, verify, &index_header, &r.problem);
  if (!index) return r;

  if (!npy::mapped_tensor(index, index_header).equal(at::arange(m.count, at::kLong))) {
    r.problem = "index.npy does not list the dataset indices 0.." + std::to_string(m.count - 1) + " in order";
    return r;
  }
  if (expect && !npy::mapped_tensor(labels, labels_header).equal(expect->labels.to(at::kLong).cpu())) {
    r.problem = "labels.npy differs from the dataset's labels";
    return r;
  }
  r.data = npy::mapped_tensor(std::move(data), data_header);
  return r;
}

void build_cache(const fs::path& dir, const Dataset& inner, const caching::StoreFormat& format, RunContext& run) {
  const fs::path root = dir.parent_path();
  const std::string key = dir.filename().string();
  fs::create_directories(root);
  // We hold the lock, so no other build of this key is running: whatever temporary or stale directory
  // of it exists was left by a crash.
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(key + ".tmp-", 0) == 0 || name.rfind(key + ".stale-", 0) == 0) fs::remove_all(entry.path());
  }

  const SampleSpec& spec = format.spec();
  const int64_t count = inner.size();
  const at::Tensor labels = inner.labels();
  if (labels.scalar_type() != at::kLong || labels.dim() != 1 || labels.size(0) != count)
    throw std::runtime_error("npy cache: the dataset's labels() is " + shape_of(labels.sizes().vec()) + " " +
                             caching::dtype_name(labels.scalar_type()) + "; the Dataset contract is int64 [" +
                             std::to_string(count) + "]");

  Manifest m;
  m.key = key;
  m.fingerprint = inner.fingerprint();
  m.store_dtype = format.store_name();
  m.dtype = caching::dtype_name(spec.dtype);
  m.count = count;
  m.shape = spec.shape;
  m.created = utc_now();
  m.sdk_version = LOOM_SDK_VERSION;

  const fs::path tmp = root / (key + ".tmp" + tag());
  fs::create_directory(tmp);
  try {
    std::vector<int64_t> data_shape = {count};
    data_shape.insert(data_shape.end(), spec.shape.begin(), spec.shape.end());
    const std::string header = npy::format_header(npy::element_type(format.store()), data_shape);
    const uint64_t bytes = caching::stored_bytes(count, spec.shape, format.store());
    const uint64_t row_bytes = count > 0 ? bytes / static_cast<uint64_t>(count) : 0;
    {
      npy::OutputFile data(tmp / kDataFile);
      data.reserve(header.size() + bytes);
      data.write(header.data(), header.size());
      caching::build_in_chunks(inner, format, run, "npy cache", [&](int64_t first, const at::Tensor& rows) {
        data.pwrite(header.size() + static_cast<uint64_t>(first) * row_bytes, rows.data_ptr(), rows.nbytes());
      });
      data.close();  // fsync
    }
    npy::save_tensor(tmp / kLabelsFile, labels.contiguous());
    npy::save_tensor(tmp / kIndexFile, at::arange(count, at::kLong));
    for (const char* name : kArrayFiles) {
      const npy::MappedFile file(tmp / name);
      m.files[name] = {file.size(), crc32_of(file)};
    }
    // The manifest is written last: a directory without one is an unfinished build.
    io::write_file_atomically(tmp / kManifestFile, m.to_json());
    io::sync_directory(tmp);

    // Publish: the old directory (invalid, or of a crashed build) is moved aside, not rewritten, so a
    // process still mapping its files keeps reading them.
    const fs::path stale = root / (key + ".stale" + tag());
    const bool replacing = fs::exists(dir);
    if (replacing) fs::rename(dir, stale);
    try {
      fs::rename(tmp, dir);
    } catch (...) {
      std::error_code ec;
      if (replacing) fs::rename(stale, dir, ec);  // the previous cache, usable or not, is the user's to judge
      throw;
    }
    io::sync_directory(root);
    std::error_code ec;
    fs::remove_all(stale, ec);
  } catch (const std::exception& e) {
    // A full disk is the likely cause: the half-built directory goes (it holds most of the space the
    // build took), and the message says so, and that the previous cache, if any, is untouched.
    std::error_code ec;
    fs::remove_all(tmp, ec);
    // The host's wrapper already names the plugin and the cache directory; this adds what was cleaned up.
    throw std::runtime_error(std::string(e.what()) + "; the unfinished " + tmp.filename().string() + " was removed" +
                             (fs::exists(dir, ec) ? ", the existing cache is left as it was" : std::string()));
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

bool looks_like_cache(const fs::path& dir) {
  // Strict on purpose: clear() deletes what this accepts. Temporary (<key>.tmp-<pid>) and stale folders
  // of a build in progress are not caches.
  std::error_code ec;
  if (!is_key(dir.filename().string()) || !fs::is_directory(dir, ec)) return false;
  if (fs::exists(dir / kManifestFile, ec)) return true;
  for (const char* name : kArrayFiles)
    if (fs::exists(dir / name, ec)) return true;
  return false;
}

void remove_cache(const fs::path& dir) {
  const fs::path stale = dir.parent_path() / (dir.filename().string() + ".stale" + tag());
  fs::rename(dir, stale);
  io::sync_directory(dir.parent_path());
  fs::remove_all(stale);
}

std::optional<std::pair<fs::path, Manifest>> previous_cache(const fs::path& root, const std::string& key,
                                                            const std::string& fingerprint) {
  std::optional<std::pair<fs::path, Manifest>> best;
  std::error_code ec;
  const std::string plugin = dataset_plugin(fingerprint);
  for (auto it = fs::directory_iterator(root, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name == key || !is_key(name) || !it->is_directory(ec)) continue;
    try {
      Manifest m = Manifest::parse(io::read_file(it->path() / kManifestFile, kMaxManifestBytes, "cache manifest"));
      if (dataset_plugin(m.fingerprint) != plugin) continue;
      if (!best || m.created > best->second.created) best.emplace(it->path(), std::move(m));
    } catch (const std::exception&) {
      // an unreadable manifest says nothing about what changed; skip it
    }
  }
  return best;
}

std::string describe(const fs::path& dir, Verify verify) {
  const OpenResult r = open_cache(dir, verify, nullptr);
  std::ostringstream out;
  out << "npy cache " << dir.string() << "\n";
  if (r.manifest) {
    const Manifest& m = *r.manifest;
    out << "  holds:    " << m.count << " samples of shape " << shape_of(m.shape) << ", " << m.dtype
        << " as the dataset loads them, stored as " << m.store_dtype << "\n"
        << "  dataset:  " << dataset_plugin(m.fingerprint) << "\n"
        << "  key:      " << m.key << " (first 16 hex digits of SHA-256 of the inputs below)\n"
        << "  fingerprint inputs:\n";
    for (const std::string& item : fingerprint_inputs(m.fingerprint, m.store_dtype, m.format_version))
      out << "    " << item << "\n";
    out << "  files:\n";
    for (const auto& [name, entry] : m.files)
      out << "    " << name << "  " << entry.bytes << " bytes (" << caching::human_bytes(entry.bytes) << "), crc32 "
          << hex32(entry.crc32) << "\n";
    out << "  created:  " << m.created << " by loom " << m.sdk_version << "\n";
  }
  const uint64_t disk = bytes_on_disk(dir);
  out << "  on disk:  " << disk << " bytes (" << caching::human_bytes(disk) << ")\n";
  if (r.valid())
    out << "  status:   valid ("
        << (verify == Verify::Full ? "sizes, .npy headers and the crc32 of every byte checked"
                                   : "sizes and .npy headers checked; verify = \"size\" skipped the checksums")
        << ")\n";
  else
    out << "  status:   INVALID: " << r.problem << "; the next run that uses it rebuilds it\n";
  return out.str();
}

}  // namespace loom::builtin::npy_cache
