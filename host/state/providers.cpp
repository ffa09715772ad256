#include "state/providers.h"

#include <algorithm>
#include <cstdio>
#include <regex>
#include <stdexcept>
#include <variant>

namespace loom::host {

void EntryWriter::once() {
  if (written_) throw std::logic_error("state provider '" + key_ + "' wrote its checkpoint entry twice");
  written_ = true;
}

void EntryWriter::write(const StateDict& tensors, const Fields& fields) {
  once();
  writer_.add(key_, version_, tensors, fields);
}

void EntryWriter::write_archive(const std::function<void(torch::serialize::OutputArchive&)>& save) {
  once();
  writer_.add_archive(key_, version_, save);
}

at::Tensor EntryReader::tensor(const std::string& name) const {
  const StateDict all = tensors();
  auto it = all.find(name);
  if (it == all.end())
    throw CheckpointError(file().string() + ": entry '" + key_ + "' has no tensor '" + name + "'; the checkpoint is damaged "
                          "or was written by another Loom. Resume from a copy, or start the run again");
  return it->second;
}

std::string stable_key(const std::string& kind, const std::string& name, int occurrence, const std::string& id) {
  if (!id.empty()) return kind + "/" + id;
  return kind + "/" + name + (occurrence == 0 ? "" : "#" + std::to_string(occurrence + 1));
}

std::string params_text(const Params& params) {
  auto number = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  auto quoted = [](const std::string& v) { return "\"" + v + "\""; };
  std::string out;
  for (const auto& [name, value] : params.values()) {
    std::string text;
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, bool>) text = v ? "true" : "false";
          else if constexpr (std::is_same_v<T, int64_t>) text = std::to_string(v);
          else if constexpr (std::is_same_v<T, double>) text = number(v);
          else if constexpr (std::is_same_v<T, std::string>) text = quoted(v);
          else if constexpr (std::is_same_v<T, IntMap>) {
            for (const auto& [k, x] : v) text += (text.empty() ? "" : ", ") + std::to_string(k) + " = " + std::to_string(x);
            text = "{ " + text + " }";
          } else {
            for (const auto& x : v) {
              std::string item;
              if constexpr (std::is_same_v<T, std::vector<double>>) item = number(x);
              else if constexpr (std::is_same_v<T, std::vector<std::string>>) item = quoted(x);
              else item = std::to_string(x);
              text += (text.empty() ? "" : ", ") + item;
            }
            text = "[" + text + "]";
          }
        },
        value);
    out += (out.empty() ? "" : ", ") + name + " = " + text;
  }
  return out;
}

void check_same_table(const EntryReader& entry, const std::string& params, const std::string& table, const std::string& plugin) {
  if (entry.version() < 2) return;  // format 2 recorded no parameters
  const Fields f = entry.fields();
  auto it = f.strings.find("table_params");
  if (it == f.strings.end() || it->second == params) return;
  throw CheckpointError(entry.file().string() + ": the state under '" + entry.key() + "' belongs to a table with {" +
                        it->second + "}, but [" + table + "] (plugin '" + plugin + "') now has {" + params +
                        "}: tables of the same plugin were reordered or changed between the stop and --resume, and "
                        "without ids they are told apart by their order only. Put them back in the order they had, or "
                        "start the run again with an id = \"…\" in each of them");
}

StateSource::StateSource(const CheckpointReader& reader) : reader_(reader) {
  // Format 2 keyed the plugins of many-kinds by position: "callback/<index>:<name>". In index order, the
  // k-th of a name is the stable key's k-th occurrence (format 2 had no ids).
  static const std::regex positional("(callback|metric_sink)/([0-9]+):(.+)");
  std::map<std::string, std::vector<std::pair<long, std::string>>> by_name;  // "<kind>/<name>" → (index, stored key)
  for (const std::string& key : reader.keys()) {
    std::smatch m;
    if (reader.format() == 2 && std::regex_match(key, m, positional))
      by_name[m[1].str() + "/" + m[3].str()].emplace_back(std::stol(m[2].str()), key);
    else
      stored_[key] = key;
  }
  for (auto& [kind_name, list] : by_name) {
    std::sort(list.begin(), list.end());
    const std::string kind = kind_name.substr(0, kind_name.find('/')), name = kind_name.substr(kind_name.find('/') + 1);
    for (size_t k = 0; k < list.size(); ++k) stored_[stable_key(kind, name, static_cast<int>(k), "")] = list[k].second;
  }
}

EntryReader StateSource::entry(const std::string& key) const {
  auto it = stored_.find(key);
  if (it == stored_.end())
    throw CheckpointError(reader_.file().string() + " has no '" + key + "' entry; it was written by another configuration");
  return EntryReader(reader_, it->second, key);
}

StateRegistry::Registration& StateRegistry::Registration::operator=(Registration&& other) noexcept {
  if (this != &other) {
    if (registry_) registry_->remove(key_);
    registry_ = other.registry_, key_ = std::move(other.key_);
    other.registry_ = nullptr;
  }
  return *this;
}

StateRegistry::Registration::~Registration() {
  if (registry_) registry_->remove(key_);
}

StateRegistry::Registration StateRegistry::add(StateProvider provider) {
  if (!provider.save || !provider.load) throw std::logic_error("state provider '" + provider.key + "' needs save and load");
  for (const StateProvider& p : providers_)
    if (p.key == provider.key)
      throw std::invalid_argument("two parts of the run keep checkpoint state under the same key '" + provider.key + "' (" +
                                  (p.owner.empty() ? "the host" : p.owner) + " and " +
                                  (provider.owner.empty() ? "the host" : provider.owner) +
                                  "); give the [[callback]] / [[metric_sink]] tables distinct id = \"…\" keys");
  std::string key = provider.key;
  providers_.push_back(std::move(provider));
  return Registration(this, std::move(key));
}

void StateRegistry::remove(const std::string& key) {
  providers_.erase(std::remove_if(providers_.begin(), providers_.end(), [&](const StateProvider& p) { return p.key == key; }),
                   providers_.end());
}

void StateRegistry::gather() const {
  for (const StateProvider& p : providers_)
    if (p.gather) p.gather();
}

void StateRegistry::save(CheckpointWriter& writer) const {
  for (const StateProvider& p : providers_) {
    EntryWriter entry(writer, p.key, p.version);
    p.save(entry);
    if (!entry.written()) throw std::logic_error("state provider '" + p.key + "' wrote no checkpoint entry");
  }
}

void StateRegistry::load(const StateSource& source, StatePhase phase) const {
  for (const StateProvider& p : providers_) {
    if (p.phase != phase) continue;
    const std::string who = p.owner.empty() ? "'" + p.key + "'" : p.owner + " ('" + p.key + "')";
    if (!source.has(p.key)) {
      if (p.absent) {
        p.absent();
        continue;
      }
      throw CheckpointError(source.reader().file().string() + " holds no state for " + who +
                            ": the checkpoint was written by a run with other tables (a [[callback]] or [[metric_sink]] "
                            "added, removed or given another id). Resume with the config.resolved.toml it was written "
                            "with, or start the run again");
    }
    const EntryReader entry = source.entry(p.key);
    if (entry.version() > p.version)
      throw CheckpointError(source.reader().file().string() + ": the state of " + who + " has layout version " +
                            std::to_string(entry.version()) + ", this Loom reads up to " + std::to_string(p.version) +
                            ". Resume it with the Loom (and plugins) that wrote it");
    p.load(entry);
  }
}

std::vector<std::string> StateRegistry::keys() const {
  std::vector<std::string> out;
  for (const StateProvider& p : providers_) out.push_back(p.key);
  return out;
}

StateKey assign_state_key(const std::vector<StateKey*>& earlier, const std::string& kind, std::string plugin,
                          std::string owner, const std::string& id, std::string table, std::string params) {
  int occurrence = 0;
  for (StateKey* e : earlier)
    if (e->plugin == plugin && !e->has_id) {
      ++occurrence;
      if (id.empty()) e->by_order = true;
    }
  StateKey out;
  out.key = stable_key(kind, plugin, occurrence, id);
  for (const StateKey* e : earlier)
    if (e->key == out.key)
      throw std::invalid_argument("[" + table + "] keeps its checkpoint state under '" + out.key + "', as [" + e->table +
                                  "] (" + e->owner + ") does; give one of them another id = \"…\"");
  out.plugin = std::move(plugin);
  out.owner = std::move(owner);
  out.table = std::move(table);
  out.params = std::move(params);
  out.by_order = id.empty() && occurrence > 0;
  out.has_id = !id.empty();
  return out;
}

}  // namespace loom::host
