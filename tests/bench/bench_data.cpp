// loom_bench_data: data-only epochs through Loom's own loader (dataset → cache → batch gather → collate),
// no model. Used by tests/bench/bench_cache.sh; prints one JSON object per epoch.
//
//   loom_bench_data CONFIG [--set section.key=value ...] [--epochs N] [--split labeled|all]
//
// The dataset, cache and loader settings ([loader] batch_size, prefetch; [run] threads) come from the
// config exactly as `loom run` would create them. The first epoch of an uncached or npy-cold run includes
// whatever the cache builds in wrap(); wrap() is timed separately and reported as "setup_seconds".
#include "loop/loader.h"
#include "loop/memory.h"
#include "plugins/run_context.h"
#include "cli/setup.h"

#include <loom/cache.h>

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>

using namespace loom;
using namespace loom::host;

int main(int argc, char** argv) {
  std::filesystem::path config_file;
  std::vector<std::string> overrides;
  int64_t epochs = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--set" && i + 1 < argc) overrides.push_back(argv[++i]);
    else if (a == "--epochs" && i + 1 < argc) epochs = std::stoll(argv[++i]);
    else if (config_file.empty() && a.rfind("--", 0) != 0) config_file = a;
    else {
      std::cerr << "usage: loom_bench_data CONFIG [--set section.key=value ...] [--epochs N]\n";
      return 2;
    }
  }
  if (config_file.empty()) {
    std::cerr << "usage: loom_bench_data CONFIG [--set section.key=value ...] [--epochs N]\n";
    return 2;
  }
  HostLogger logger;
  Registry registry;
  try {
    const ResolvedConfig config = load_and_validate(config_file, overrides, registry, logger);
    const int threads = apply_threads(config.run);
    CpuMemoryTracker::install();  // the CPU allocator `loom run` uses (it keeps large blocks for reuse)
    HostRunContext context(logger, c10::Device(c10::kCPU), static_cast<uint64_t>(config.run.integer("seed")), threads,
                           {}, config.run.str("cache_dir"));
    auto t0 = std::chrono::steady_clock::now();
    auto raw = create_plugin<Dataset>(registry, config, Kind::Dataset, context, nullptr);
    auto cache = create_plugin<Cache>(registry, config, Kind::Cache, context, raw);
    std::shared_ptr<Dataset> data = cache->wrap(raw);
    const double setup = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    View view;
    view.indices = at::cat({data->indices(Split::Labeled), data->indices(Split::Unlabeled)}).contiguous();
    view.augment = false;
    const int64_t n = view.indices.size(0);
    const at::Tensor labels = data->labels();
    LoaderOptions options;
    options.batch_size = config.loader.integer("batch_size");
    options.prefetch = std::max<int64_t>(config.loader.integer("prefetch"), 0);
    for (int64_t e = 0; e < epochs; ++e) {
      const at::Tensor order = at::randperm(n, context.generator("bench/" + std::to_string(e)), at::kLong);
      const auto start = std::chrono::steady_clock::now();
      Loader loader(*data, labels, view, order, 0, options);
      double checksum = 0;  // consumes each batch so nothing is optimised away
      while (auto b = loader.next()) checksum += b->x.view(-1)[0].item<double>();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("{\"epoch\": %lld, \"samples\": %lld, \"seconds\": %.4f, \"samples_per_second\": %.1f, "
                  "\"setup_seconds\": %.3f, \"threads\": %d, \"batch_size\": %lld, \"prefetch\": %lld, "
                  "\"checksum\": %.6g}\n",
                  static_cast<long long>(e), static_cast<long long>(n), seconds, static_cast<double>(n) / seconds, setup,
                  threads, static_cast<long long>(options.batch_size), static_cast<long long>(options.prefetch),
                  checksum);
      std::fflush(stdout);
    }
    return 0;
  } catch (const ConfigErrors& e) {
    report_config_errors(e);
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "loom_bench_data: " << e.what() << "\n";
    return 1;
  }
}
