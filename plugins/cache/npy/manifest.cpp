#include "manifest.h"

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <stdexcept>

namespace loom::builtin::npy_cache {
namespace {

using nlohmann::json;

const json& field(const json& j, const char* name, bool (json::*is)() const noexcept, const char* type) {
  if (!j.contains(name) || !(j.at(name).*is)())
    throw std::runtime_error(std::string("field '") + name + "' is missing or not " + type);
  return j.at(name);
}

std::string input_name(const std::string& item) {
  const size_t eq = item.find('=');
  if (eq != std::string::npos) return item.substr(0, eq);
  if (!item.empty() && item[0] == '/') return item.substr(0, item.find(':'));  // path:size:mtime
  return item.substr(0, item.find('/'));                                       // plugin/version
}

}  // namespace

std::string Manifest::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = kFormatName;
  j["format_version"] = format_version;
  j["plugin"] = plugin;
  j["key"] = key;
  j["fingerprint"] = fingerprint;
  j["store_dtype"] = store_dtype;
  j["dtype"] = dtype;
  j["count"] = count;
  j["shape"] = shape;
  nlohmann::ordered_json f = nlohmann::ordered_json::object();
  for (const auto& [name, entry] : files) f[name] = {{"bytes", entry.bytes}, {"crc32", entry.crc32}};
  j["files"] = f;
  j["created"] = created;
  j["loom_sdk_version"] = sdk_version;
  return j.dump(2) + "\n";
}

Manifest Manifest::parse(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw std::runtime_error("not a JSON object");
  if (field(j, "format", &json::is_string, "a string").get<std::string>() != kFormatName)
    throw std::runtime_error(std::string("field 'format' is not \"") + kFormatName + "\"");
  Manifest m;
  m.format_version = field(j, "format_version", &json::is_number_integer, "an integer").get<int>();
  m.plugin = field(j, "plugin", &json::is_string, "a string").get<std::string>();
  m.key = field(j, "key", &json::is_string, "a string").get<std::string>();
  m.fingerprint = field(j, "fingerprint", &json::is_string, "a string").get<std::string>();
  m.store_dtype = field(j, "store_dtype", &json::is_string, "a string").get<std::string>();
  m.dtype = field(j, "dtype", &json::is_string, "a string").get<std::string>();
  m.count = field(j, "count", &json::is_number_integer, "an integer").get<int64_t>();
  for (const json& d : field(j, "shape", &json::is_array, "an array")) {
    if (!d.is_number_integer()) throw std::runtime_error("field 'shape' holds a non-integer");
    m.shape.push_back(d.get<int64_t>());
  }
  for (const auto& [name, entry] : field(j, "files", &json::is_object, "an object").items()) {
    if (!entry.is_object() || !entry.contains("bytes") || !entry.at("bytes").is_number_unsigned() ||
        !entry.contains("crc32") || !entry.at("crc32").is_number_unsigned() ||
        entry.at("crc32").get<uint64_t>() > 0xFFFFFFFFull)
      throw std::runtime_error("files['" + name + "'] lacks an unsigned 'bytes' or a 32-bit 'crc32'");
    m.files[name] = {entry.at("bytes").get<uint64_t>(), entry.at("crc32").get<uint32_t>()};
  }
  m.created = field(j, "created", &json::is_string, "a string").get<std::string>();
  m.sdk_version = field(j, "loom_sdk_version", &json::is_string, "a string").get<std::string>();
  return m;
}

std::string cache_key(const std::string& fingerprint, const std::string& store_dtype) {
  const std::string material = std::string(kFormatName) + "\nformat_version=" + std::to_string(kFormatVersion) +
                               "\nstore_dtype=" + store_dtype + "\nfingerprint=" + fingerprint;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(material.data(), material.size(), digest, &length, EVP_sha256(), nullptr) != 1 || length < 8)
    throw std::runtime_error("npy cache: SHA-256 (OpenSSL) failed");
  static const char* hex = "0123456789abcdef";
  std::string key;
  for (int i = 0; i < 8; ++i) {
    key += hex[digest[i] >> 4];
    key += hex[digest[i] & 15];
  }
  return key;
}

bool is_key(std::string_view name) {
  return name.size() == 16 &&
         std::all_of(name.begin(), name.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'); });
}

std::vector<std::string> fingerprint_inputs(const std::string& fingerprint, const std::string& store_dtype,
                                            int format_version) {
  std::vector<std::string> items = {"format_version=" + std::to_string(format_version),
                                    "store_dtype=" + store_dtype};
  size_t start = 0;
  while (start <= fingerprint.size()) {
    const size_t end = std::min(fingerprint.find(';', start), fingerprint.size());
    if (end > start) items.push_back(fingerprint.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

std::string dataset_plugin(const std::string& fingerprint) {
  return fingerprint.substr(0, std::min(fingerprint.find(';'), fingerprint.find('/')));
}

std::string describe_changes(const std::vector<std::string>& before, const std::vector<std::string>& after) {
  std::vector<std::string> gone, added;
  for (const auto& b : before)
    if (std::find(after.begin(), after.end(), b) == after.end()) gone.push_back(b);
  for (const auto& a : after)
    if (std::find(before.begin(), before.end(), a) == before.end()) added.push_back(a);
  std::string out;
  auto append = [&](const std::string& part) { out += (out.empty() ? "" : "; ") + part; };
  for (const auto& g : gone) {
    auto match = std::find_if(added.begin(), added.end(), [&](const std::string& a) { return input_name(a) == input_name(g); });
    if (match != added.end()) {
      append(g + " \u2192 " + *match);
      added.erase(match);
    } else {
      append("removed " + g);
    }
  }
  for (const auto& a : added) append("added " + a);
  return out;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace loom::builtin::npy_cache
