// The `memory` and `npy` cache plugins, created by name through the host Registry from the built .so
// files and wrapped around the real fashion-mnist and synthetic datasets: bit-identical samples, exact
// size refusal, keys, validation and rebuild of damaged caches, concurrent builders, inspect/clear.
#include "run_util.h"

#include "plugins/registry.h"
#include "plugins/run_context.h"

#include "cache/common/store_format.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <future>
#include <thread>

namespace loom::test {
namespace {

// Indices a loader would ask for: shuffled, with repeats, including the first and last sample.
at::Tensor some_indices(int64_t size) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  return at::cat({torch::tensor({int64_t{0}, size - 1}), at::randint(0, size, {254}, gen)});
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class Caches : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = std::make_unique<host::Registry>();
    registry_->scan({LOOM_TEST_PLUGIN_DIR});
  }
  static void TearDownTestSuite() {
    fashion_.clear();
    registry_.reset();
  }
  void SetUp() override { logger_.add_file(log_file()); }

  fs::path log_file() const { return tmp_ / "test.log"; }
  std::string log() const { return read_file(log_file()); }
  fs::path npy_root() const { return tmp_ / "cache" / "npy"; }

  Params params_of(Kind kind, const std::string& name, const std::map<std::string, Value>& overrides) {
    const host::Feature* f = registry_->find(kind, name);
    if (!f) throw std::runtime_error(name + " plugin not built");
    std::map<std::string, Value> values;
    for (const auto& spec : f->info.params)
      if (spec.default_value) values[spec.name] = *spec.default_value;
    for (const auto& [k, v] : overrides) values[k] = v;
    return Params(values);
  }
  std::shared_ptr<Dataset> dataset(const std::string& name, const std::map<std::string, Value>& overrides = {}) {
    const Params p = params_of(Kind::Dataset, name, overrides);
    return registry_->create<Dataset>(*registry_->find(Kind::Dataset, name), CreateContext{p, ctx_, nullptr});
  }
  // Reading Fashion-MNIST's IDX files takes a second; share one dataset per normalisation.
  std::shared_ptr<Dataset> fashion(const std::string& normalize = "standard") {
    auto& d = fashion_[normalize];
    if (!d) d = dataset("fashion-mnist", {{"normalize", normalize}});
    return d;
  }
  std::shared_ptr<Cache> cache(const std::string& name, const std::map<std::string, Value>& overrides,
                               std::shared_ptr<Dataset> data) {
    const Params p = params_of(Kind::Cache, name, overrides);
    return registry_->create<Cache>(*registry_->find(Kind::Cache, name), CreateContext{p, ctx_, std::move(data)});
  }
  void expect_same_samples(const Dataset& cached, const Dataset& raw, const std::string& what) {
    const at::Tensor idx = some_indices(raw.size());
    expect_same_bytes(cached.load(idx), raw.load(idx), what);
  }
  std::vector<std::string> entries(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  static inline std::unique_ptr<host::Registry> registry_;
  static inline std::map<std::string, std::shared_ptr<Dataset>> fashion_;
  TempDir tmp_;
  host::HostLogger logger_;
  host::HostRunContext ctx_{logger_, c10::kCPU, 1, 2, {}, tmp_.path() / "cache"};
};

// ---- memory -------------------------------------------------------------------------------------------

TEST_F(Caches, MemoryIsBitIdenticalToUncachedAndForwardsTheRest) {
  const auto synthetic = dataset("synthetic", {});
  const auto cached = cache("memory", {}, synthetic)->wrap(synthetic);
  expect_same_samples(*cached, *synthetic, "memory/synthetic/auto");
  EXPECT_EQ(cached->fingerprint(), synthetic->fingerprint());
  EXPECT_EQ(cached->size(), synthetic->size());
  EXPECT_TRUE(torch::equal(cached->labels(), synthetic->labels()));
  EXPECT_TRUE(torch::equal(cached->indices(Split::Val), synthetic->indices(Split::Val)));
  EXPECT_EQ(cached->spec().shape, synthetic->spec().shape);

  for (const char* store : {"auto", "uint8"}) {
    const auto wrapped = cache("memory", {{"store_dtype", std::string(store)}}, fashion())->wrap(fashion());
    expect_same_samples(*wrapped, *fashion(), std::string("memory/fashion-mnist/") + store);
  }
  EXPECT_NE(log().find("memory cache: 70000 samples (54.9 MB as uint8)"), std::string::npos) << log();
}

// ---- device (on the CPU here: the run's device) ----------------------------------------------------

TEST_F(Caches, DeviceIsBitIdenticalToUncachedAndStoresPixelsAsUint8) {
  const auto synthetic = dataset("synthetic", {});
  const auto cached = cache("device", {}, synthetic)->wrap(synthetic);
  expect_same_samples(*cached, *synthetic, "device/synthetic/auto");
  EXPECT_EQ(cached->fingerprint(), synthetic->fingerprint());
  EXPECT_TRUE(torch::equal(cached->labels(), synthetic->labels()));
  // auto means uint8 for a dataset that declares its pixel affine (Fashion-MNIST does): 4x smaller, exact
  const auto wrapped = cache("device", {}, fashion())->wrap(fashion());
  expect_same_samples(*wrapped, *fashion(), "device/fashion-mnist/auto");
  EXPECT_NE(log().find("device cache: 70000 samples (54.9 MB as uint8) on cpu"), std::string::npos) << log();
  const auto as_float = cache("device", {{"store_dtype", std::string("float32")}}, fashion())->wrap(fashion());
  expect_same_samples(*as_float, *fashion(), "device/fashion-mnist/float32");
  EXPECT_THROW(wrapped->load(torch::tensor({int64_t{70000}})), std::out_of_range);
}

TEST_F(Caches, DeviceRefusesMoreThanMaxBytes) {
  const auto synthetic = dataset("synthetic", {});
  try {
    cache("device", {{"max_bytes", int64_t{1000}}}, synthetic)->wrap(synthetic);
    FAIL() << "expected a refusal";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("more than max_bytes = 1000"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Fix:"), std::string::npos) << e.what();
  }
}

TEST(DeviceCacheRun, TrainsExactlyLikeTheMemoryCache) {
  // The same run through both caches: the device cache's batches (gathered and converted where the
  // samples live) must be the memory cache's, so the losses agree to the last bit.
  std::map<std::string, std::vector<nlohmann::json>> records;
  for (const std::string plugin : {"memory", "device"}) {
    TempDir d;
    write_file(d / "c.toml", "[run]\nname = \"c\"\nseed = 3\nepochs = 2\nthreads = 1\ndevice = \"cpu\"\noutput_dir = \"" +
                                 d.path().string() + "\"\n[loader]\nbatch_size = 64\n[dataset]\nplugin = \"fashion-mnist\"\n"
                                 "labeled_fraction = 0.02\n[model]\nplugin = \"cnn\"\nchannels = [8]\nhidden = 16\n"
                                 "[[augmentation]]\nplugin = \"flip\"\n[cache]\nplugin = \"" + plugin + "\"\n");
    const CommandResult r = loom("run " + (d / "c.toml").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    records[plugin] = read_epoch_records(only_run_dir(d.path(), "c") / "metrics.jsonl");
  }
  ASSERT_EQ(records["memory"].size(), 2u);
  ASSERT_EQ(records["device"].size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(records["memory"][e]["train_loss"], records["device"][e]["train_loss"]) << "epoch " << e;
    EXPECT_EQ(records["memory"][e]["val_accuracy"], records["device"][e]["val_accuracy"]) << "epoch " << e;
  }
}

TEST_F(Caches, MemoryFloat16IsLossyAndWarnsOnce) {
  const auto synthetic = dataset("synthetic");
  const auto cached = cache("memory", {{"store_dtype", std::string("float16")}}, synthetic)->wrap(synthetic);
  const at::Tensor idx = some_indices(synthetic->size());
  const at::Tensor a = cached->load(idx), b = synthetic->load(idx);
  EXPECT_EQ(a.scalar_type(), at::kFloat) << "load() keeps returning the dataset's dtype";
  EXPECT_TRUE(torch::allclose(a, b, /*rtol=*/1e-3, /*atol=*/1e-3));
  EXPECT_FALSE(torch::equal(a, b)) << "float16 rounding should show on noisy float32 samples";
  EXPECT_EQ(count_of(log(), "store_dtype = float16 is lossy for this dataset's float32 samples"), 1) << log();
}

TEST_F(Caches, MemoryRefusesMoreThanMaxBytesBeforeAllocating) {
  const auto synthetic = dataset("synthetic");  // 2048 + 512 samples of [1, 8, 8] float32 = 655360 bytes
  try {
    cache("memory", {{"max_bytes", int64_t{600000}}}, synthetic)->wrap(synthetic);
    FAIL() << "expected a refusal";
  } catch (const std::exception& e) {
    EXPECT_EQ(std::string(e.what()),
              "memory cache: the dataset needs 2560 samples x [1, 8, 8] x 4 bytes (float32) = 655360 bytes (655.4 kB), "
              "more than max_bytes = 600000 bytes (600.0 kB). Fix: use the npy cache ([cache] plugin = \"npy\", "
              "memory-mapped, so the OS keeps in RAM only what fits), a smaller store_dtype (\"float16\", or \"uint8\" "
              "for datasets that declare pixel_scale/pixel_shift), or raise max_bytes");
  }
  // The suggested fix works: float16 halves it.
  EXPECT_NO_THROW(cache("memory", {{"max_bytes", int64_t{600000}}, {"store_dtype", std::string("float16")}}, synthetic)
                      ->wrap(synthetic));
}

TEST_F(Caches, Uint8NeedsADatasetThatDeclaresItsPixels) {
  const auto synthetic = dataset("synthetic");
  for (const char* name : {"memory", "npy"}) {
    try {
      cache(name, {{"store_dtype", std::string("uint8")}}, synthetic)->wrap(synthetic);
      ADD_FAILURE() << name << ": expected a refusal";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("store_dtype = \"uint8\" needs a dataset that declares its pixel affine"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(npy_root())) << "nothing written after a refusal";
}

TEST(StoreFormat, Uint8VerifiesTheRoundTripOfEverySample) {
  SampleSpec spec{.shape = {1, 2, 2}, .dtype = at::kFloat, .num_classes = 2, .pixel_scale = {0.5}, .pixel_shift = {-1.0}};
  const caching::StoreFormat format("uint8", spec, "test cache");
  const at::Tensor pixels = torch::tensor({0, 1, 254, 255, 7, 8, 9, 10}, at::kByte).view({2, 1, 2, 2});
  const at::Tensor samples = from_pixels(pixels, spec);
  EXPECT_TRUE(torch::equal(format.to_store(samples, 0), pixels));
  expect_same_bytes(format.from_store(pixels), samples, "from_store(to_store(x)) == x");

  at::Tensor off = samples.clone();
  off.view({-1})[7].add_(0.01);  // sample 1 leaves the pixel grid
  try {
    format.to_store(off, 100);
    FAIL() << "expected a refusal";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("test cache: store_dtype = \"uint8\": sample 101 is not from_pixels()"),
              std::string::npos)
        << e.what();
  }
  at::Tensor negative_zero = from_pixels(torch::zeros({1, 1, 2, 2}, at::kByte), {.shape = {1, 2, 2}, .dtype = at::kFloat,
                                                                                .pixel_scale = {1.0}, .pixel_shift = {0.0}});
  negative_zero.neg_();  // -0.0: equal to 0.0 as a number, but not the same bytes
  const caching::StoreFormat unit("uint8", {.shape = {1, 2, 2}, .dtype = at::kFloat, .pixel_scale = {1.0}, .pixel_shift = {0.0}}, "t");
  EXPECT_THROW(unit.to_store(negative_zero, 0), std::runtime_error);
}

// ---- npy ----------------------------------------------------------------------------------------------

TEST_F(Caches, NpyBuildsANumpyReadableCacheOnceAndIsBitIdentical) {
  auto first = cache("npy", {{"store_dtype", std::string("uint8")}}, fashion());
  const fs::path dir = first->location(*fashion());
  EXPECT_EQ(dir.parent_path(), npy_root());
  const auto cached = first->wrap(fashion());
  expect_same_samples(*cached, *fashion(), "npy/fashion-mnist/uint8");
  EXPECT_NE(log().find("npy cache: building " + dir.string() + ": no cache yet"), std::string::npos) << log();
  EXPECT_EQ(entries(dir), (std::vector<std::string>{"data.npy", "index.npy", "labels.npy", "manifest.json"}));

  const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR "/tests/python/npy_interop.py cache " +
                               dir.string());
  ASSERT_EQ(py.exit_code, 0) << py.output;
  const auto seen = nlohmann::json::parse(py.output);
  EXPECT_EQ(seen["data_dtype"], "uint8");
  EXPECT_EQ(seen["data_shape"], nlohmann::json::array({70000, 1, 28, 28}));
  EXPECT_EQ(seen["labels_sum"].get<int64_t>(), fashion()->labels().sum().item<int64_t>());

  // A second run finds it and builds nothing.
  const auto again = cache("npy", {{"store_dtype", std::string("uint8")}}, fashion())->wrap(fashion());
  expect_same_samples(*again, *fashion(), "npy/fashion-mnist/uint8, reopened");
  EXPECT_NE(log().find("npy cache: using " + dir.string()), std::string::npos) << log();
  EXPECT_EQ(count_of(log(), "npy cache: built "), 1) << log();

  // store_dtype = auto on the synthetic dataset (float32 as it is).
  const auto synthetic = dataset("synthetic");
  expect_same_samples(*cache("npy", {}, synthetic)->wrap(synthetic), *synthetic, "npy/synthetic/auto");
}

TEST_F(Caches, NpyKeyCoversFingerprintStoreDtypeAndFormatVersion) {
  const auto a = dataset("synthetic");
  const auto b = dataset("synthetic", {{"noise", 0.25}});
  auto c = cache("npy", {}, a);
  const std::string key_a = c->location(*a).filename().string();
  EXPECT_NE(key_a, c->location(*b).filename().string()) << "dataset fingerprint";
  EXPECT_NE(key_a, cache("npy", {{"store_dtype", std::string("float16")}}, a)->location(*a).filename().string())
      << "store dtype";
  EXPECT_EQ(key_a, cache("npy", {{"store_dtype", std::string("float32")}}, a)->location(*a).filename().string())
      << "auto resolves to the dataset's float32: the same bytes, the same cache";
  EXPECT_NE(c->location(*fashion("standard")), c->location(*fashion("unit"))) << "a preprocessing param";

  // The documented formula (docs/caching.md), recomputed here: the format version is part of the key.
  auto sha16 = [](const std::string& text) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr);
    char hex[17];
    for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return std::string(hex, 16);
  };
  const std::string material = "\nstore_dtype=float32\nfingerprint=" + a->fingerprint();
  EXPECT_EQ(key_a, sha16("loom-npy-cache\nformat_version=1" + material));
  EXPECT_NE(key_a, sha16("loom-npy-cache\nformat_version=2" + material));

  // A manifest of another format version in the key's directory is not read: it is rebuilt.
  c->wrap(a);
  const fs::path manifest = c->location(*a) / "manifest.json";
  std::string text = read_file(manifest);
  text.replace(text.find("\"format_version\": 1"), 19, "\"format_version\": 2");
  write_file(manifest, text);
  expect_same_samples(*cache("npy", {}, a)->wrap(a), *a, "after a format-version change");
  EXPECT_NE(log().find("is invalid (cache format version 2; this plugin reads version 1); rebuilding it"),
            std::string::npos)
      << log();
}

TEST_F(Caches, NpyTruncatedDataIsDetectedAndRebuilt) {
  const auto synthetic = dataset("synthetic");
  const fs::path dir = cache("npy", {}, synthetic)->location(*synthetic);
  cache("npy", {}, synthetic)->wrap(synthetic);
  const uint64_t full = fs::file_size(dir / "data.npy");
  fs::resize_file(dir / "data.npy", full / 2);  // a crash or a full disk would leave something like this

  for (const char* verify : {"size", "full"}) {  // a wrong size is caught whatever `verify` says
    const auto cached = cache("npy", {{"verify", std::string(verify)}}, synthetic)->wrap(synthetic);
    expect_same_samples(*cached, *synthetic, std::string("rebuilt after truncation, verify=") + verify);
    if (std::string(verify) == "size") fs::resize_file(dir / "data.npy", full / 2);
  }
  EXPECT_EQ(count_of(log(), "npy cache: " + dir.string() + " is invalid (data.npy is " + std::to_string(full / 2) +
                                " bytes but manifest.json says " + std::to_string(full) +
                                " (truncated or overwritten)); rebuilding it"),
            2)
      << log();
  EXPECT_EQ(fs::file_size(dir / "data.npy"), full);
}

TEST_F(Caches, NpyCorruptManifestIsDetectedAndRebuilt) {
  const auto synthetic = dataset("synthetic");
  auto c = cache("npy", {}, synthetic);
  c->wrap(synthetic);
  const fs::path dir = c->location(*synthetic);
  std::string text = read_file(dir / "manifest.json");
  write_file(dir / "manifest.json", text.substr(0, text.size() / 2));  // cut in the middle
  const auto cached = cache("npy", {}, synthetic)->wrap(synthetic);
  expect_same_samples(*cached, *synthetic, "rebuilt after a corrupt manifest");
  EXPECT_NE(log().find("npy cache: " + dir.string() + " is invalid (manifest.json is corrupt: not valid JSON"),
            std::string::npos)
      << log();
  EXPECT_NE(cache("npy", {}, nullptr)->inspect(dir)->find("status:   valid"), std::string::npos) << "a complete manifest again";
}

TEST_F(Caches, NpyFlippedBitsAreCaughtByFullVerifyNotBySizeVerify) {
  const auto synthetic = dataset("synthetic");
  auto c = cache("npy", {}, synthetic);
  c->wrap(synthetic);
  const fs::path data = c->location(*synthetic) / "data.npy";
  {
    std::fstream f(data, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(data) - 2));  // a byte of the last sample
    f.put('\x7f');
  }
  const at::Tensor last = torch::tensor({synthetic->size() - 1});
  // verify = "size": the documented trade-off — sizes and headers are fine, so the flipped byte is served.
  const auto fast = cache("npy", {{"verify", std::string("size")}}, synthetic)->wrap(synthetic);
  EXPECT_FALSE(torch::equal(fast->load(last), synthetic->load(last)));
  // verify = "full" (the default) reads every byte and rebuilds.
  const auto checked = cache("npy", {}, synthetic)->wrap(synthetic);
  expect_same_samples(*checked, *synthetic, "rebuilt after a checksum mismatch");
  EXPECT_NE(log().find("is invalid (data.npy fails its checksum (crc32 0x"), std::string::npos) << log();
}

TEST_F(Caches, NpyConcurrentBuildersInOneProcessEndWithOneValidCache) {
  const auto synthetic = dataset("synthetic", {{"samples", int64_t{20000}}, {"height", int64_t{16}}, {"width", int64_t{16}}});
  std::vector<std::future<std::shared_ptr<Dataset>>> builders;
  for (int i = 0; i < 4; ++i)  // each with its own plugin instance and lock descriptor, like separate runs
    builders.push_back(std::async(std::launch::async, [&] { return cache("npy", {}, synthetic)->wrap(synthetic); }));
  for (auto& b : builders) expect_same_samples(*b.get(), *synthetic, "one of four concurrent builders");
  const std::string key = cache("npy", {}, synthetic)->location(*synthetic).filename().string();
  EXPECT_EQ(entries(npy_root()), (std::vector<std::string>{key, key + ".lock"})) << "no temporary or stale folders";
  EXPECT_EQ(count_of(log(), "npy cache: built "), 1) << log();
  EXPECT_EQ(count_of(log(), "npy cache: building "), 1) << "only the builder explains why it builds\n" << log();
}

TEST_F(Caches, NpyTwoLoomRunsAtOnceBuildOneCache) {
  std::string config = read_file(LOOM_TEST_SOURCE_DIR "/tests/configs/synthetic.toml");
  config += "\n[cache]\nplugin = \"npy\"\ndir = \"" + (tmp_ / "shared").string() + "\"\n";
  write_file(tmp_ / "npy.toml", config);
  auto start = [&](const std::string& out) {
    return std::async(std::launch::async, [&, out] {
      return loom("run " + (tmp_ / "npy.toml").string() + " --set run.epochs=1 --set run.output_dir=" + (tmp_ / out).string());
    });
  };
  auto a = start("a"), b = start("b");
  const CommandResult ra = a.get(), rb = b.get();
  ASSERT_EQ(ra.exit_code, 0) << ra.output;
  ASSERT_EQ(rb.exit_code, 0) << rb.output;
  EXPECT_EQ(count_of(ra.output + rb.output, "npy cache: built "), 1) << ra.output << rb.output;
  EXPECT_EQ(count_of(ra.output + rb.output, "npy cache: building "), 1) << ra.output << rb.output;
  const std::vector<std::string> left = entries(tmp_ / "shared");
  ASSERT_EQ(left.size(), 2u) << "one cache and its lock file";
  EXPECT_TRUE(cache("npy", {}, nullptr)->inspect(tmp_ / "shared" / left[0])->find("status:   valid") != std::string::npos);
  // Both runs trained on the same cached data: the same seed gives the same loss.
  const auto ma = read_epoch_records(only_run_dir(tmp_ / "a", "synthetic") / "metrics.jsonl");
  const auto mb = read_epoch_records(only_run_dir(tmp_ / "b", "synthetic") / "metrics.jsonl");
  ASSERT_EQ(ma.size(), 1u);
  ASSERT_EQ(mb.size(), 1u);
  EXPECT_EQ(ma[0]["train_loss"], mb[0]["train_loss"]);
}

TEST_F(Caches, NpyRebuildSaysWhichInputChanged) {
  auto standard = cache("npy", {{"store_dtype", std::string("uint8")}}, fashion("standard"));
  const fs::path old_dir = standard->location(*fashion("standard"));
  standard->wrap(fashion("standard"));
  auto unit = cache("npy", {{"store_dtype", std::string("uint8")}}, fashion("unit"));
  const fs::path new_dir = unit->location(*fashion("unit"));
  expect_same_samples(*unit->wrap(fashion("unit")), *fashion("unit"), "npy/fashion-mnist/unit/uint8");
  EXPECT_NE(log().find("npy cache: building " + new_dir.string() + ": the fingerprint changed since " +
                       old_dir.string() + ": normalize=standard \u2192 normalize=unit\n"),
            std::string::npos)
      << log();
}

TEST_F(Caches, NpyInspectExplainsAndClearRemovesOnlyCaches) {
  const auto synthetic = dataset("synthetic");
  const fs::path dir = cache("npy", {}, synthetic)->location(*synthetic);
  cache("npy", {}, synthetic)->wrap(synthetic);

  // `loom cache info|clear DIR` create the plugin with defaults and no dataset.
  const auto tool = cache("npy", {}, nullptr);
  const std::optional<std::string> info = tool->inspect(dir);
  ASSERT_TRUE(info.has_value());
  for (const std::string& line :
       {"holds:    2560 samples of shape [1, 8, 8], float32 as the dataset loads them, stored as float32",
        "dataset:  synthetic", "    format_version=1\n", "    store_dtype=float32\n", "    synthetic/1.0.0\n",
        "    noise=0.5\n", "    data_seed=0\n", "data.npy  655488 bytes (655.5 kB), crc32 0x",
        "status:   valid (sizes, .npy headers and the crc32 of every byte checked)"})
    EXPECT_NE(info->find(line), std::string::npos) << line << "\n" << *info;
  EXPECT_NE(tool->inspect(npy_root())->find("1 npy cache in " + npy_root().string()), std::string::npos);
  EXPECT_FALSE(tool->inspect(tmp_.path()).has_value()) << "not an npy cache";

  fs::resize_file(dir / "labels.npy", 100);
  EXPECT_NE(tool->inspect(dir)->find("status:   INVALID: labels.npy is 100 bytes but manifest.json says"), std::string::npos)
      << *tool->inspect(dir);

  fs::create_directories(tmp_ / "precious");
  write_file(tmp_ / "precious" / "data.npy", "x");
  EXPECT_THROW(tool->clear(tmp_ / "precious"), std::exception);
  EXPECT_TRUE(fs::exists(tmp_ / "precious" / "data.npy"));
  tool->clear(dir.string() + "/");
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(entries(npy_root()).empty()) << "cache and lock file removed";
}

}  // namespace
}  // namespace loom::test
