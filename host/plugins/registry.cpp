#include "plugins/registry.h"

#include "plugins/plugin_guard.h"

#include "plugins/plugin_file.h"

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace loom::host {

namespace fs = std::filesystem;

std::string Library::name() const { return std::string(info.library_name, strnlen(info.library_name, sizeof info.library_name)); }
std::string Library::version() const {
  return std::string(info.library_version, strnlen(info.library_version, sizeof info.library_version));
}

namespace {

/// The Registrar a library's entry point sees: collects features, checking names as they come.
class CollectingRegistrar final : public Registrar {
 public:
  explicit CollectingRegistrar(std::shared_ptr<const Library> library) : library_(std::move(library)) {}
  using Registrar::add;
  void add(FeatureInfo info, AnyFactory factory) override {
    if (info.name.empty()) throw std::runtime_error("a feature was registered with an empty name");
    if (!factory) throw std::runtime_error("feature '" + info.name + "' was registered without a factory");
    auto f = std::make_unique<Feature>();
    f->library = library_;
    f->info = std::move(info);
    f->factory = std::move(factory);
    added.push_back(std::move(f));
  }
  std::vector<std::unique_ptr<Feature>> added;

 private:
  std::shared_ptr<const Library> library_;
};

}  // namespace

bool Registry::load(const fs::path& file) {
  auto fail = [&](std::string reason) {
    failures_.push_back({file, std::move(reason)});
    return false;
  };
  std::optional<LoomPluginInfo> info;
  try {
    info = read_plugin_info(file);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  if (!info) {
    return fail("not a Loom plugin: it has no '" LOOM_PLUGIN_ENTRY_POINT "' entry point (no " LOOM_PLUGIN_INFO_SECTION
                " section). Declare one with LOOM_PLUGIN_LIBRARY(...) from <loom/plugin.h>, or move the file out "
                "of the plugin path.");
  }
  if (std::string why = check_compatibility(*info); !why.empty()) return fail(why);

  auto library = std::make_shared<Library>();
  library->file = file;
  library->info = *info;
  const LoomPluginLibrary* entry = nullptr;
  try {
    library->handle = std::make_shared<boost::dll::shared_library>(
        file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    if (!library->handle->has(LOOM_PLUGIN_ENTRY_POINT))
      return fail("not a Loom plugin: the " LOOM_PLUGIN_INFO_SECTION " section is there but the '" LOOM_PLUGIN_ENTRY_POINT
                  "' entry point is not exported. Declare it with LOOM_PLUGIN_LIBRARY(...) from <loom/plugin.h>.");
    auto entry_point = library->handle->get<const LoomPluginLibrary*()>(LOOM_PLUGIN_ENTRY_POINT);
    entry = entry_point();
  } catch (const std::exception& e) {
    return fail(std::string("cannot be loaded: ") + error_text(e));
  }
  if (!entry || !entry->register_features)
    return fail("its '" LOOM_PLUGIN_ENTRY_POINT "' entry point returned no registration function");
  if (std::memcmp(&entry->info, &*info, sizeof(LoomPluginInfo)) != 0)
    return fail("the info returned by '" LOOM_PLUGIN_ENTRY_POINT "' differs from its " LOOM_PLUGIN_INFO_SECTION
                " section; the library is damaged — rebuild it");

  CollectingRegistrar registrar(library);
  try {
    entry->register_features(&registrar);
  } catch (const std::exception& e) {
    return fail(std::string("registration failed: ") + error_text(e));
  } catch (...) {
    return fail("registration failed with an unknown exception");
  }
  if (registrar.added.empty()) return fail("the library registered no features");
  for (auto& feature : registrar.added) {
    if (const Feature* existing = find(feature->info.kind, feature->info.name)) {
      failures_.push_back({file, std::string(to_string(feature->info.kind)) + " plugin '" + feature->info.name +
                                     "' is already provided by " + existing->library->file.string() +
                                     "; this copy is ignored (the earlier one in the search path wins)",
                           false});
      continue;
    }
    features_.push_back(std::move(feature));
  }
  return true;
}

void Registry::scan(const std::vector<fs::path>& dirs) {
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      missing_.push_back(dir);
      continue;
    }
    searched_.push_back(dir);
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".so" && entry.is_regular_file(ec)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());  // a stable order makes "first one wins" predictable
    for (const fs::path& f : files) load(fs::absolute(f));
  }
}

const Feature* Registry::find(Kind kind, std::string_view name) const {
  for (const auto& f : features_)
    if (f->info.kind == kind && f->info.name == name) return f.get();
  return nullptr;
}

std::vector<const Feature*> Registry::features(Kind kind) const {
  std::vector<const Feature*> out;
  for (const auto& f : features_)
    if (f->info.kind == kind) out.push_back(f.get());
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->info.name < b->info.name; });
  return out;
}

std::shared_ptr<void> Registry::call_factory(const Feature& feature, const CreateContext& context) const {
  const std::string where = std::string(to_string(feature.info.kind)) + " plugin '" + feature.info.name + "' (" + feature.library->file.filename().string() + ")";
  std::shared_ptr<void> object;
  try {
    object = feature.factory(context);
  } catch (const std::exception& e) {
    throw PluginError(where + " failed in create: " + error_text(e));
  } catch (...) {
    throw PluginError(where + " failed in create with an unknown exception");
  }
  if (!object) throw PluginError(where + " returned no object from create");
  return object;
}

std::vector<fs::path> plugin_search_path(const std::vector<fs::path>& extra) {
  std::vector<fs::path> dirs;
  const fs::path exe_dir = boost::dll::program_location().parent_path();
  for (const fs::path& candidate : {exe_dir / "../lib/loom/plugins", exe_dir / "../plugins"}) {
    std::error_code ec;
    if (fs::is_directory(candidate, ec)) {
      dirs.push_back(fs::weakly_canonical(candidate));
      break;
    }
  }
  if (const char* env = std::getenv("LOOM_PLUGIN_PATH")) {
    std::string s = env;
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(':', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) dirs.emplace_back(s.substr(start, end - start));
      start = end + 1;
    }
  }
  dirs.insert(dirs.end(), extra.begin(), extra.end());
  return dirs;
}

}  // namespace loom::host
