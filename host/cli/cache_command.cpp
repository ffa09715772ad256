// `loom cache build|info|clear`: prepare an on-disk cache ahead of a run, explain one, remove one. The
// cache plugins own their formats; the host only finds the plugin that recognises a directory
// (Cache::inspect) and calls it.
#include "cli/commands.h"
#include "cli/setup.h"
#include "plugins/guarded_plugins.h"
#include "plugins/run_context.h"
#include "plugins/slot.h"

#include <loom/cache.h>

#include <algorithm>
#include <iostream>

namespace loom::host {

namespace fs = std::filesystem;

namespace {

/// A cache plugin created outside a config (default params, no dataset): for info and clear of a DIR.
/// Every cache plugin, created outside a config (default params, no dataset): for info and clear of a DIR.
std::vector<Slot<Cache>> all_caches(const Registry& registry, RunContext& context) {
  std::vector<Slot<Cache>> caches;
  for (const Feature* f : registry.features(Kind::Cache)) {
    const Params params = default_params(*f);
    caches.emplace_back(registry.create<Cache>(*f, CreateContext{params, context, nullptr}), PluginRef::of(*f));
  }
  return caches;
}

/// The cache directories at `dir`: `dir` itself when a plugin recognises it, else its recognised children
/// (a cache root such as [run] cache_dir/npy holds one directory per fingerprint). `children_first`: the
/// children, and `dir` itself only when none is a cache.
std::vector<std::pair<fs::path, const Slot<Cache>*>> find_caches(const fs::path& dir, const std::vector<Slot<Cache>>& caches,
                                                                std::vector<std::string>* descriptions,
                                                                bool children_first = false) {
  std::vector<std::pair<fs::path, const Slot<Cache>*>> found;
  auto try_dir = [&](const fs::path& d) {
    for (const Slot<Cache>& c : caches)
      if (auto text = c.call<&Cache::inspect>(d)) {
        found.emplace_back(d, &c);
        if (descriptions) descriptions->push_back(*text);
        return true;
      }
    return false;
  };
  if (!children_first && try_dir(dir)) return found;
  std::vector<fs::path> children;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory()) children.push_back(entry.path());
  std::sort(children.begin(), children.end());
  for (const fs::path& child : children) try_dir(child);
  if (children_first && found.empty()) try_dir(dir);
  return found;
}

struct Prepared {
  ResolvedConfig config;
  std::shared_ptr<GuardedDataset> dataset;
  Slot<Cache> cache;
  std::string cache_name;
};

/// Config → dataset and cache plugins, created exactly as `loom run` creates them.
Prepared prepare(const CacheOptions& options, Registry& registry, HostLogger& logger,
                 std::unique_ptr<HostRunContext>& context) {
  Prepared p;
  p.config = load_and_validate(options.target, options.overrides, registry, logger);
  const int threads = apply_threads(p.config.run);
  context = std::make_unique<HostRunContext>(logger, c10::Device(c10::kCPU),
                                             static_cast<uint64_t>(p.config.run.integer("seed")), threads, fs::path(),
                                             p.config.run.str("cache_dir"));
  const PluginChoice& dataset = p.config.one(Kind::Dataset);
  p.dataset = std::make_shared<GuardedDataset>(
      Slot<Dataset>(create_plugin<Dataset>(registry, p.config, Kind::Dataset, *context, nullptr), PluginRef::of(*dataset.feature)));
  const PluginChoice& cache = p.config.one(Kind::Cache);
  p.cache = Slot<Cache>(create_plugin<Cache>(registry, p.config, Kind::Cache, *context, p.dataset), PluginRef::of(*cache.feature));
  p.cache_name = p.config.one(Kind::Cache).feature->info.name;
  return p;
}

int build(const CacheOptions& options) {
  HostLogger logger;
  logger.set_verbose(options.verbose);
  Registry registry;
  std::unique_ptr<HostRunContext> context;
  const Prepared p = prepare(options, registry, logger, context);
  const fs::path location = p.cache.call<&Cache::location>(*p.dataset);
  if (location.empty()) {
    std::cerr << "loom cache build: the cache plugin '" << p.cache_name << "' of " << options.target.string()
              << " keeps nothing on disk, so there is nothing to build ahead of a run; set [cache] plugin = \"npy\" "
                 "for an on-disk cache\n";
    return 2;
  }
  try {
    p.cache.call<&Cache::wrap>(std::static_pointer_cast<Dataset>(p.dataset));
  } catch (const PluginError& e) {
    throw PluginError(std::string(e.what()) + " (building " + location.string() + ")");
  }
  std::cout << "cache ready: " << location.string() << "\n";
  if (auto text = p.cache.call<&Cache::inspect>(location)) std::cout << *text << (text->empty() || text->back() == '\n' ? "" : "\n");
  return 0;
}

int info(const CacheOptions& options) {
  HostLogger logger;
  Registry registry;
  registry.scan(plugin_search_path({}));
  warn_failures(registry, logger);
  HostRunContext context(logger, c10::Device(c10::kCPU), 0, 1, fs::path(), fs::path());
  const fs::path dir = options.target;
  if (!fs::is_directory(dir)) {
    std::cerr << "loom cache info: '" << dir.string() << "' is not a directory; pass a cache directory (e.g. "
              << "cache/npy/<key>, as printed by `loom cache build`) or a cache root (e.g. cache/npy)\n";
    return 2;
  }
  const auto caches = all_caches(registry, context);
  std::vector<std::string> descriptions;
  const auto found = find_caches(dir, caches, &descriptions);
  if (found.empty()) {
    std::cerr << "loom cache info: '" << dir.string() << "' is not a Loom cache directory and holds none (no cache "
              << "plugin recognises it or a directory inside it)\n";
    return 2;
  }
  for (size_t i = 0; i < found.size(); ++i) {
    if (found.size() > 1) std::cout << (i ? "\n" : "") << "== " << found[i].first.string() << " (" << found[i].second->who().name << ")\n";
    std::cout << descriptions[i] << (descriptions[i].empty() || descriptions[i].back() == '\n' ? "" : "\n");
  }
  return 0;
}

/// `loom cache clear CONFIG`: the cache the config's dataset would use.
int clear_configured(const CacheOptions& options, Registry& registry, HostLogger& logger) {
  std::unique_ptr<HostRunContext> context;
  const Prepared p = prepare(options, registry, logger, context);
  const fs::path location = p.cache.call<&Cache::location>(*p.dataset);
  if (location.empty()) {
    std::cout << "the cache plugin '" << p.cache_name << "' keeps nothing on disk; nothing to clear\n";
    return 0;
  }
  if (!fs::exists(location)) {
    std::cout << "no cache at " << location.string() << "; nothing to clear\n";
    return 0;
  }
  p.cache.call<&Cache::clear>(location);
  std::cout << "removed " << location.string() << "\n";
  return 0;
}

int clear(const CacheOptions& options) {
  HostLogger logger;
  logger.set_verbose(options.verbose);
  Registry registry;
  if (fs::is_regular_file(options.target)) return clear_configured(options, registry, logger);
  if (!options.overrides.empty()) {
    std::cerr << "loom cache clear: --set applies to a CONFIG, not to a directory\n";
    return 2;
  }
  if (!fs::is_directory(options.target)) {
    std::cerr << "loom cache clear: '" << options.target.string() << "' is neither a config file nor a directory\n";
    return 2;
  }
  registry.scan(plugin_search_path({}));
  warn_failures(registry, logger);
  HostRunContext context(logger, c10::Device(c10::kCPU), 0, 1, fs::path(), fs::path());
  const auto caches = all_caches(registry, context);
  // A cache root (e.g. cache/npy) loses every cache inside it; a cache directory only itself.
  const auto found = find_caches(options.target, caches, nullptr, /*children_first=*/true);
  if (found.empty()) {
    std::cerr << "loom cache clear: '" << options.target.string() << "' is not a Loom cache directory and holds none; "
              << "nothing was removed\n";
    return 2;
  }
  for (const auto& [dir, cache] : found) {
    cache->call<&Cache::clear>(dir);
    std::cout << "removed " << dir.string() << "\n";
  }
  return 0;
}

}  // namespace

int cache_command(const CacheOptions& options) {
  try {
    if (options.action == "build") return build(options);
    if (options.action == "info") return info(options);
    if (options.action == "clear") return clear(options);
    std::cerr << "loom cache: unknown action '" << options.action << "' (build, info or clear)\n";
    return 2;
  } catch (const ConfigErrors& e) {
    report_config_errors(e);
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "loom cache " << options.action << ": " << error_text(e) << "\n";
    return 1;
  }
}

}  // namespace loom::host
