#include "provenance.h"

#include "common/npy/npy_tensor.h"

#include <loom/io.h>

#include <algorithm>
#include <stdexcept>
#include <string_view>

namespace loom::pseudo_label {
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const fs::path& file) {
  try {
    return io::read_file(file);  // a regular file, checked before reading (a FIFO is refused at once)
  } catch (const io::Error& e) {
    throw std::runtime_error(std::string("pseudo-label: ") + e.what());
  }
}

// Same file names with the same bytes.
bool same_contents(const fs::path& a, const fs::path& b) {
  auto names = [](const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  };
  const std::vector<std::string> files = names(a);
  if (files != names(b)) return false;
  for (const std::string& f : files)
    if (read_bytes(a / f) != read_bytes(b / f)) return false;
  return true;
}

// ".<name><suffix>" beside `dir`: a temporary that a reader of the run directory skips.
fs::path hidden_sibling(const fs::path& dir, std::string_view suffix) {
  std::string name(".");
  name.append(dir.filename().string()).append(suffix);
  return dir.parent_path() / name;
}

}  // namespace

Written write_array_dir(const fs::path& dir, const std::vector<std::pair<std::string, at::Tensor>>& arrays) {
  const fs::path parent = dir.parent_path();
  const fs::path temp = hidden_sibling(dir, ".partial");
  const fs::path old = hidden_sibling(dir, ".old");
  fs::remove_all(temp);  // left by a crash while writing: never part of the record
  fs::remove_all(old);
  try {
    fs::create_directories(temp);
    for (const auto& [name, tensor] : arrays) npy::save_tensor(temp / (name + ".npy"), tensor.cpu());

    Written result = Written::Fresh;
    if (fs::exists(dir)) {
      if (same_contents(dir, temp)) {
        fs::remove_all(temp);
        return Written::Identical;
      }
      // A directory cannot be renamed over a non-empty one: move the old one aside first. A crash in
      // between leaves no `dir` (the round is redone on resume), never a mixed one.
      fs::rename(dir, old);
      result = Written::Replaced;
    }
    try {
      fs::rename(temp, dir);
    } catch (...) {
      std::error_code ec;
      if (result == Written::Replaced) fs::rename(old, dir, ec);
      throw;
    }
    io::sync_directory(parent);
    std::error_code ec;
    fs::remove_all(old, ec);  // the new record is in place: a leftover is removed by the next write
    return result;
  } catch (const std::exception& e) {
    // A full disk: the partial directory goes with the error (it holds the space the arrays took).
    std::error_code ec;
    fs::remove_all(temp, ec);
    throw std::runtime_error("pseudo-label: cannot write " + dir.string() + ": " + e.what());
  }
}

void write_json(const fs::path& file, const nlohmann::json& value) {
  try {
    io::write_file_atomically(file, value.dump(2) + "\n");
  } catch (const std::exception& e) {
    throw std::runtime_error("pseudo-label: cannot write " + file.string() + ": " + e.what());
  }
}

RoundLog::RoundLog(fs::path file) : file_(std::move(file)) {
  if (!fs::exists(file_)) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_bytes(file_));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("pseudo-label: '" + file_.string() + "' is not valid JSON (" + e.what() +
                             "); it records the rounds a resumed run already reported — restore it or start a new run");
  }
  if (!j.is_object() || !j.contains("rounds") || !j["rounds"].is_array())
    throw std::runtime_error("pseudo-label: '" + file_.string() + "' has no \"rounds\" list; restore it or start a new run");
  rounds_ = j["rounds"];
}

bool RoundLog::contains(int64_t round) const {
  for (const auto& r : rounds_)
    if (r.value("round", int64_t{-1}) == round) return true;
  return false;
}

void RoundLog::record(const nlohmann::json& entry) {
  const int64_t round = entry.at("round").get<int64_t>();
  // Changed in a copy: after a failed write, the log in memory still says what the file says.
  nlohmann::json rounds = rounds_;
  bool replaced = false;
  for (auto& r : rounds)
    if (r.value("round", int64_t{-1}) == round) {
      r = entry;
      replaced = true;
    }
  if (!replaced) rounds.push_back(entry);
  write_json(file_, nlohmann::json{{"rounds", rounds}});
  rounds_ = std::move(rounds);
}

}  // namespace loom::pseudo_label
