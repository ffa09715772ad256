#include "state/checkpoint.h"

#include "state/durable_file.h"
#include "state/fault.h"
#include "state/hash.h"
#include "plugins/plugin_guard.h"

#include <loom/abi.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace loom::host {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormatKey = "loom_checkpoint_format";

std::string joined(const std::vector<std::string>& keys) {
  std::string s;
  for (const auto& k : keys) s += (s.empty() ? "" : ",") + k;
  return s;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size() && !s.empty()) {
    const size_t end = s.find(',', start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::string serialize(torch::serialize::OutputArchive& archive) {
  std::ostringstream out;
  archive.save_to(out);
  return std::move(out).str();
}

fs::path sibling(const fs::path& file, const std::string& suffix) {
  return file.parent_path() / (file.stem().string() + suffix);
}

/// The digest recorded in a checksum file ("<sha256>  <name>"), or "" when it is missing or unreadable (a
/// FIFO or a device in its place included: checked before reading, never waited on).
std::string recorded_digest(const fs::path& sums) {
  std::error_code ec;
  if (!fs::exists(sums, ec)) return {};
  std::string text;
  try {
    text = io::read_file(sums, 4096, "checksum file");
  } catch (const io::Error&) {
    return {};
  }
  const std::string digest = text.substr(0, text.find_first_of(" \t\n"));
  return digest.size() == 64 ? digest : std::string();
}

}  // namespace

int64_t Fields::integer(const std::string& k) const {
  auto it = ints.find(k);
  if (it == ints.end()) throw std::runtime_error("field '" + k + "' is missing");
  return it->second;
}
double Fields::real(const std::string& k) const {
  auto it = reals.find(k);
  if (it == reals.end()) throw std::runtime_error("field '" + k + "' is missing");
  return it->second;
}
const std::string& Fields::str(const std::string& k) const {
  auto it = strings.find(k);
  if (it == strings.end()) throw std::runtime_error("field '" + k + "' is missing");
  return it->second;
}

CheckpointWriter::CheckpointWriter() { root_.write(kFormatKey, c10::IValue(kCheckpointFormat)); }

void CheckpointWriter::add(const std::string& key, int64_t version, const StateDict& tensors, const Fields& fields) {
  add_archive(key, version, [&](torch::serialize::OutputArchive& a) {
    torch::serialize::OutputArchive t(a.compilation_unit());
    for (const auto& [k, v] : tensors) t.write(k, v);
    a.write("tensors", t);
    a.write("tensor_keys", c10::IValue([&] {
              std::vector<std::string> keys;
              for (const auto& [k, v] : tensors) keys.push_back(k);
              return joined(keys);
            }()));
    for (const auto& [k, v] : fields.ints) a.write("i/" + k, c10::IValue(v));
    for (const auto& [k, v] : fields.reals) a.write("r/" + k, c10::IValue(v));
    for (const auto& [k, v] : fields.strings) a.write("s/" + k, c10::IValue(v));
  });
}

void CheckpointWriter::add_archive(const std::string& key, int64_t version,
                                   const std::function<void(torch::serialize::OutputArchive&)>& save) {
  if (key.find(',') != std::string::npos) throw std::logic_error("checkpoint entry names cannot contain ','");
  torch::serialize::OutputArchive entry(root_.compilation_unit());
  entry.write("version", c10::IValue(version));
  save(entry);
  root_.write("entry/" + key, entry);
  keys_.push_back(key);
}

// Two generations, each verified by its own checksum file. The order of the renames keeps, at every
// instant, at least one (data file, checksum file) pair whose digests agree — the readers find the data
// file whose digest any checksum file records, so a crash anywhere leaves a usable checkpoint.
void CheckpointWriter::commit(const fs::path& file) {
  root_.write("entries", c10::IValue(joined(keys_)));
  const std::string bytes = serialize(root_);
  const std::string digest = sha256_bytes(bytes);
  const fs::path sums = sibling(file, ".sha256"), prev = sibling(file, ".prev.pt"), prev_sums = sibling(file, ".prev.sha256");
  const fs::path tmp = write_temp(file, bytes);  // a full disk fails here: nothing rotated yet
  fault_point("checkpoint");
  std::error_code ec;
  const bool had = fs::exists(file, ec) && fs::exists(sums, ec);
  if (had) {
    fs::rename(sums, prev_sums, ec);
    if (!ec) fs::rename(file, prev, ec);
    if (ec) {
      fs::remove(tmp, ec);
      throw WriteError("cannot keep the previous checkpoint " + file.string() + " as " + prev.filename().string() + ": " + ec.message());
    }
  }
  try {
    write_file_atomically(sums, digest + "  " + file.filename().string() + "\n");
  } catch (...) {
    // Roll the generations back: the previous checkpoint stays the latest.
    fs::remove(tmp, ec);
    if (had) fs::rename(prev, file, ec), fs::rename(prev_sums, sums, ec);
    throw;
  }
  commit_temp(tmp, file);
}

std::unique_ptr<CheckpointReader> open_checkpoint(const fs::path& file, Logger& log) {
  const fs::path prev = sibling(file, ".prev.pt");
  const std::string digests[] = {recorded_digest(sibling(file, ".sha256")), recorded_digest(sibling(file, ".prev.sha256"))};
  std::string problems;
  for (const fs::path& candidate : {file, prev}) {
    std::error_code ec;
    if (!fs::exists(candidate, ec)) continue;
    std::string why;
    std::string actual;
    try {
      actual = sha256_file(candidate);  // refuses a FIFO or a device (a symlink to /dev/zero) before reading
    } catch (const io::Error& e) {
      problems += (problems.empty() ? "" : "; ") + candidate.string() + " is unusable: " + e.what();
      continue;
    }
    if (digests[0].empty() && digests[1].empty()) {
      // No checksum at all: an older Loom's checkpoint (say so precisely) or one whose checksum file was lost.
      CheckpointReader unverified(candidate);  // throws the format or readability error
      why = "it has no checksum file (" + sibling(file, ".sha256").filename().string() + "), so it cannot be verified";
    } else if (actual != digests[0] && actual != digests[1]) {
      why = "its bytes do not match the checksum written with it (damaged on disk)";
    } else {
      try {
        auto reader = std::make_unique<CheckpointReader>(candidate);
        if (!problems.empty()) {
          const Fields pos = reader->fields("position");
          log.warn(problems + "; resuming from the previous checkpoint " + candidate.filename().string() + " (stage '" +
                   pos.str("stage") + "', epoch " + std::to_string(pos.integer("epoch") + 1) + ", " +
                   std::to_string(pos.integer("optimizer_steps")) + " optimizer steps): the progress after it is replayed");
        }
        return reader;
      } catch (const CheckpointError& e) {
        why = e.what();
      }
    }
    problems += (problems.empty() ? "" : "; ") + candidate.string() + " is unusable: " + why;
  }
  if (problems.empty())
    throw CheckpointError(file.parent_path().string() + " never reached its first checkpoint (the run stopped before "
                          "the end of its first epoch): there is nothing to resume. Start it over with: loom run " +
                          (file.parent_path() / "config.resolved.toml").string());
  throw CheckpointError(problems + ". No usable checkpoint is left; start the run over with: loom run " +
                        (file.parent_path() / "config.resolved.toml").string());
}

CheckpointReader::CheckpointReader(const fs::path& file) : file_(file) {
  try {
    io::check_regular_file(file, io::kNoLimit, "checkpoint");  // LibTorch opens it itself: check first
  } catch (const io::Error& e) {
    throw CheckpointError(std::string(e.what()) + "; resume from a copy, or start the run again");
  }
  try {
    root_.load_from(file.string());
  } catch (const std::exception& e) {
    throw CheckpointError(file.string() + " is not a readable checkpoint (" + error_text(e) +
                          "); it may be truncated or damaged. Resume from a copy, or start the run again");
  }
  c10::IValue format;
  if (!root_.try_read(kFormatKey, format)) {
    c10::IValue legacy;
    const bool v1 = root_.try_read("position/ints", legacy);
    throw CheckpointError(file.string() + " is checkpoint format " + (v1 ? "1 (written by Loom 0.1 or 0.2)" : "unknown") +
                          "; this Loom (" LOOM_SDK_VERSION ") reads formats " + std::to_string(kOldestReadableCheckpointFormat) +
                          " to " + std::to_string(kCheckpointFormat) + " only. Finish that run with the Loom that started it, or start it again");
  }
  format_ = format.toInt();
  if (format_ < kOldestReadableCheckpointFormat || format_ > kCheckpointFormat)
    throw CheckpointError(file.string() + " is checkpoint format " + std::to_string(format_) + "; this Loom (" LOOM_SDK_VERSION
                          ") reads formats " + std::to_string(kOldestReadableCheckpointFormat) + " to " +
                          std::to_string(kCheckpointFormat) + " only. Resume it with the Loom that wrote it, or start the run again");
  c10::IValue entries;
  if (!root_.try_read("entries", entries))
    throw CheckpointError(file.string() + " has no entry list; it is damaged. Resume from a copy, or start the run again");
  keys_ = split(entries.toStringRef());
}

bool CheckpointReader::has(const std::string& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

torch::serialize::InputArchive CheckpointReader::entry(const std::string& key) const {
  if (!has(key)) throw CheckpointError(file_.string() + " has no '" + key + "' entry; it was written by another configuration");
  torch::serialize::InputArchive a;
  root_.read("entry/" + key, a);
  return a;
}

int64_t CheckpointReader::version(const std::string& key) const {
  c10::IValue v;
  entry(key).read("version", v);
  return v.toInt();
}

StateDict CheckpointReader::tensors(const std::string& key) const {
  torch::serialize::InputArchive a = entry(key), t;
  StateDict out;
  c10::IValue keys;
  a.read("tensor_keys", keys);
  a.read("tensors", t);
  for (const std::string& k : split(keys.toStringRef())) {
    at::Tensor v;
    t.read(k, v);
    out[k] = v;
  }
  return out;
}

Fields CheckpointReader::fields(const std::string& key) const {
  torch::serialize::InputArchive a = entry(key);
  Fields f;
  for (const std::string& k : a.keys()) {
    c10::IValue v;
    if (k.rfind("i/", 0) == 0 && a.try_read(k, v)) f.ints[k.substr(2)] = v.toInt();
    if (k.rfind("r/", 0) == 0 && a.try_read(k, v)) f.reals[k.substr(2)] = v.toDouble();
    if (k.rfind("s/", 0) == 0 && a.try_read(k, v)) f.strings[k.substr(2)] = v.toStringRef();
  }
  return f;
}

void CheckpointReader::read_archive(const std::string& key,
                                    const std::function<void(torch::serialize::InputArchive&)>& load) const {
  torch::serialize::InputArchive a = entry(key);
  load(a);
}

StateDict module_state(torch::nn::Module& module) {
  StateDict s;
  for (const auto& p : module.named_parameters()) s["param/" + p.key()] = p.value().detach();
  for (const auto& b : module.named_buffers()) s["buffer/" + b.key()] = b.value().detach();
  return s;
}

void load_module_state(torch::nn::Module& module, const StateDict& state, const std::string& what) {
  torch::NoGradGuard no_grad;
  size_t used = 0;
  auto copy = [&](const std::string& key, at::Tensor target) {
    auto it = state.find(key);
    if (it == state.end()) throw CheckpointError(what + " has no '" + key + "': it was saved from another model architecture");
    if (!it->second.sizes().equals(target.sizes()))
      throw CheckpointError(what + ": '" + key + "' has shape " + c10::str(it->second.sizes()) + " where the model has " +
                            c10::str(target.sizes()) + ": it was saved from another model configuration");
    target.copy_(it->second);
    ++used;
  };
  for (auto& p : module.named_parameters()) copy("param/" + p.key(), p.value());
  for (auto& b : module.named_buffers()) copy("buffer/" + b.key(), b.value());
  if (used != state.size())
    throw CheckpointError(what + " holds " + std::to_string(state.size()) + " tensors for a model with " + std::to_string(used) +
                          ": it was saved from another model architecture");
}

void read_model(const fs::path& file, torch::nn::Module& model) {
  try {
    io::check_regular_file(file, io::kNoLimit, "model file");  // LibTorch opens it itself: check first
  } catch (const io::Error& e) {
    throw CheckpointError("cannot load weights from " + file.string() + ": " + e.what());
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string());
    model.load(archive);
  } catch (const std::exception& e) {
    throw CheckpointError("cannot load weights from " + file.string() + ": " + error_text(e) +
                          ". The file is damaged or belongs to another model configuration");
  }
}

void write_model(const fs::path& file, torch::nn::Module& model) {
  torch::serialize::OutputArchive archive;
  model.save(archive);
  const fs::path tmp = write_temp(file, serialize(archive));
  fault_point("model");
  commit_temp(tmp, file);
}

}  // namespace loom::host
