// Finds plugin libraries, checks them, loads them, and creates plugin objects on request.
//
// Lifetime rule: every object a plugin creates keeps its library loaded (the returned shared_ptr owns a
// reference to it), so a library is never unloaded while its code can still run.
#pragma once

#include <loom/abi.h>
#include <loom/context.h>
#include <loom/kinds.h>
#include <loom/registrar.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace boost::dll {
class shared_library;
}

namespace loom::host {

struct Library {
  std::filesystem::path file;
  LoomPluginInfo info{};
  std::shared_ptr<boost::dll::shared_library> handle;
  std::string name() const;
  std::string version() const;
};

struct Feature {
  // Declaration order matters: `factory` (code that lives in the library) is destroyed before `library`.
  std::shared_ptr<const Library> library;
  FeatureInfo info;
  AnyFactory factory;
};

/// A library that was found but not used, and why.
struct LoadFailure {
  std::filesystem::path file;
  std::string reason;
  /// True when the whole library was refused (none of its features registered); false for a duplicate
  /// feature name skipped from a library that loaded.
  bool refused = true;
};

/// Thrown when a plugin's own code fails; the message names the plugin, its library and the step.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Registry {
 public:
  /// Loads every `*.so` in each directory (non-recursive), in order. Missing directories are skipped
  /// and listed in missing() (the caller warns); failures are recorded, never thrown.
  void scan(const std::vector<std::filesystem::path>& dirs);
  /// Loads one library file. Returns false and records a LoadFailure when it is refused.
  bool load(const std::filesystem::path& file);

  const Feature* find(Kind kind, std::string_view name) const;
  std::vector<const Feature*> features(Kind kind) const;
  const std::vector<std::unique_ptr<Feature>>& all() const { return features_; }
  const std::vector<LoadFailure>& failures() const { return failures_; }
  const std::vector<std::filesystem::path>& searched() const { return searched_; }
  /// Directories asked for (LOOM_PLUGIN_PATH, [run] plugin_paths) that do not exist.
  const std::vector<std::filesystem::path>& missing() const { return missing_; }

  /// Calls the feature's factory; any exception becomes a PluginError with context.
  template <class T>
  std::shared_ptr<T> create(const Feature& feature, const CreateContext& context) const {
    if (feature.info.kind != KindTraits<T>::kind) throw std::logic_error("plugin created as the wrong kind");
    std::shared_ptr<void> object = call_factory(feature, context);
    auto typed = std::static_pointer_cast<T>(object);
    // Aliasing constructor: the control block owns (library, object); the object dies first.
    auto owner = std::make_shared<std::pair<std::shared_ptr<const Library>, std::shared_ptr<T>>>(feature.library,
                                                                                                 typed);
    return std::shared_ptr<T>(owner, typed.get());
  }

 private:
  std::shared_ptr<void> call_factory(const Feature& feature, const CreateContext& context) const;

  std::vector<std::unique_ptr<Feature>> features_;
  std::vector<LoadFailure> failures_;
  std::vector<std::filesystem::path> searched_;
  std::vector<std::filesystem::path> missing_;
};

/// Plugin directories in search order: the built-in dir next to the executable (build tree or install
/// prefix), then LOOM_PLUGIN_PATH (':'-separated), then `extra` (the config's [run] plugin_paths).
std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::filesystem::path>& extra);

}  // namespace loom::host
