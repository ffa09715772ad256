// Plugin libraries: real fixture .so files (tests/fixtures) — a good one, wrong SDK ABI, wrong LibTorch,
// wrong C++ ABI, no entry point, a factory that throws — and the exact messages users see.
#include "test_util.h"

#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

namespace loom::test {
namespace {

const fs::path kFixtures = LOOM_TEST_FIXTURE_DIR;

std::string only_failure(const fs::path& file) {
  host::Registry r;
  EXPECT_FALSE(r.load(file));
  EXPECT_EQ(r.failures().size(), 1u);
  EXPECT_TRUE(r.all().empty());
  return r.failures().empty() ? "" : r.failures()[0].reason;
}

TEST(PluginLoading, GoodLibraryRegistersItsFeatures) {
  host::Registry r;
  ASSERT_TRUE(r.load(kFixtures / "libloom_fixture_good.so"));
  ASSERT_NE(r.find(Kind::Cache, "fixture-passthrough"), nullptr);
  const host::Feature* f = r.find(Kind::Cache, "fixture-required");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->info.version, "0.1.0");
  EXPECT_EQ(f->library->name(), "loom_fixture_good");
  ASSERT_EQ(f->info.params.size(), 2u);
  EXPECT_TRUE(f->info.params[0].is_required);
}

// The mismatched fixtures abort() in a constructor: passing these tests proves they were never loaded.
TEST(PluginLoading, WrongSdkAbiIsRefusedBeforeLoading) {
  EXPECT_EQ(only_failure(kFixtures / "libloom_fixture_wrong_abi.so"),
            "library 'loom_fixture_wrong_abi' was built against Loom SDK ABI version 99 (SDK 9.9.9), but this loom "
            "supports ABI version 6 (SDK 0.6.0). Rebuild the plugin against this Loom's SDK (find_package(Loom) from "
            "its install prefix) and reinstall it.");
}

TEST(PluginLoading, WrongLibTorchIsRefusedBeforeLoading) {
  EXPECT_EQ(only_failure(kFixtures / "libloom_fixture_wrong_torch.so"),
            "library 'loom_fixture_wrong_torch' was built against LibTorch 1.13.1, but this loom uses LibTorch " TORCH_VERSION
            ". Rebuild the plugin against the same torch wheel (python3 -m pip install torch==" TORCH_VERSION ").");
}

TEST(PluginLoading, WrongCxxAbiIsRefusedBeforeLoading) {
  EXPECT_EQ(only_failure(kFixtures / "libloom_fixture_wrong_cxx_abi.so"),
            "library 'loom_fixture_wrong_cxx_abi' was built with _GLIBCXX_USE_CXX11_ABI=0, but this loom uses "
            "_GLIBCXX_USE_CXX11_ABI=1. Rebuild the plugin with LibTorch's compile flags (link the Loom::sdk CMake "
            "target).");
}

TEST(PluginLoading, LibraryWithoutEntryPoint) {
  EXPECT_EQ(only_failure(kFixtures / "libloom_fixture_no_entry.so"),
            "not a Loom plugin: it has no 'loom_plugin_library' entry point (no .loom_plugin section). Declare one "
            "with LOOM_PLUGIN_LIBRARY(...) from <loom/plugin.h>, or move the file out of the plugin path.");
}

TEST(PluginLoading, FileThatIsNotElf) {
  TempDir dir;
  write_file(dir / "libnotes.so", "just text\n");
  EXPECT_EQ(only_failure(dir / "libnotes.so"), "not an ELF shared library");
}

TEST(PluginLoading, FactoryThatThrowsIsReportedWithContext) {
  host::Registry r;
  ASSERT_TRUE(r.load(kFixtures / "libloom_fixture_throws.so"));
  const host::Feature* f = r.find(Kind::Cache, "fixture-throws");
  ASSERT_NE(f, nullptr);
  host::HostLogger logger;
  host::HostRunContext ctx(logger, c10::kCPU, 0, 1, {}, {});
  Params params;
  try {
    r.create<Cache>(*f, CreateContext{params, ctx, nullptr});
    FAIL() << "create did not throw";
  } catch (const host::PluginError& e) {
    EXPECT_STREQ(e.what(), "cache plugin 'fixture-throws' (libloom_fixture_throws.so) failed in create: deliberate failure "
                           "in create");
  }
}

TEST(PluginLoading, ObjectsKeepTheirLibraryLoaded) {
  const fs::path lib = kFixtures / "libloom_fixture_good.so";
  std::shared_ptr<Cache> cache;
  {
    host::Registry r;
    ASSERT_TRUE(r.load(lib));
    host::HostLogger logger;
    host::HostRunContext ctx(logger, c10::kCPU, 0, 1, {}, {});
    Params params;
    cache = r.create<Cache>(*r.find(Kind::Cache, "fixture-passthrough"), CreateContext{params, ctx, nullptr});
  }  // the registry is gone; the object must still hold the library
  void* handle = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_NOLOAD);
  EXPECT_NE(handle, nullptr) << "library was unloaded while an object it created is alive";
  if (handle) ::dlclose(handle);
  EXPECT_EQ(cache->wrap(nullptr), nullptr);  // its code still runs
  cache.reset();
  handle = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_NOLOAD);
  EXPECT_EQ(handle, nullptr) << "library stayed loaded after its last object died";
  if (handle) ::dlclose(handle);
}

TEST(PluginLoading, DuplicateNamesKeepTheFirstAndSayWhy) {
  TempDir dir;
  fs::copy_file(kFixtures / "libloom_fixture_good.so", dir / "libcopy.so");
  host::Registry r;
  ASSERT_TRUE(r.load(kFixtures / "libloom_fixture_good.so"));
  r.load(dir / "libcopy.so");
  ASSERT_EQ(r.failures().size(), 2u);
  EXPECT_EQ(r.failures()[0].reason, "cache plugin 'fixture-passthrough' is already provided by " +
                                        (kFixtures / "libloom_fixture_good.so").string() +
                                        "; this copy is ignored (the earlier one in the search path wins)");
}

TEST(PluginLoading, PluginsCommandListsFailuresWithFileAndReason) {
  const CommandResult r = loom("plugins", LOOM_TEST_FIXTURE_DIR);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Libraries that failed to load:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find((kFixtures / "libloom_fixture_wrong_abi.so").string() +
                          ": library 'loom_fixture_wrong_abi' was built against Loom SDK ABI version 99"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("fixture-passthrough"), std::string::npos);

  const CommandResult j = loom("plugins --json", LOOM_TEST_FIXTURE_DIR);
  ASSERT_EQ(j.exit_code, 0) << j.output;
  const auto json = nlohmann::json::parse(j.output);
  EXPECT_EQ(json["failures"].size(), 4u) << json["failures"].dump(2);
}

// A plugin the config names but whose library was refused at load: the config error says which library
// and why, not only that the name is unknown.
TEST(PluginLoading, AnUnknownPluginNamesTheRefusedLibraryThatMayProvideIt) {
  const std::string config = std::string(LOOM_TEST_SOURCE_DIR) + "/tests/configs/synthetic.toml";
  const CommandResult r = loom("check " + config + " --set dataset.plugin=fixture-wrong-cxx-abi", LOOM_TEST_FIXTURE_DIR);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown dataset plugin 'fixture-wrong-cxx-abi'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("; library libloom_fixture_wrong_cxx_abi.so in " + kFixtures.string() +
                          " was refused: library 'loom_fixture_wrong_cxx_abi' was built with _GLIBCXX_USE_CXX11_ABI=0"),
            std::string::npos)
      << r.output;
  // Only the library whose file name matches: the other refused ones are left to `loom plugins` (the
  // load warnings above the error name every refused library; the error line itself names one).
  const size_t at = r.output.find("unknown dataset plugin 'fixture-wrong-cxx-abi'");
  const std::string error_line = at == std::string::npos ? "" : r.output.substr(at, r.output.find('\n', at) - at);
  EXPECT_EQ(error_line.find("libloom_fixture_wrong_abi.so"), std::string::npos) << error_line;
  EXPECT_NE(r.output.find("(`loom plugins` lists every refused library)"), std::string::npos) << r.output;

  // No file name matches: every refused library is named (three at most).
  const CommandResult any = loom("check " + config + " --set dataset.plugin=my-dataset", LOOM_TEST_FIXTURE_DIR);
  EXPECT_EQ(any.exit_code, 2) << any.output;
  EXPECT_NE(any.output.find("; library libloom_fixture_wrong_abi.so in " + kFixtures.string() +
                            " was refused: library 'loom_fixture_wrong_abi' was built against Loom SDK ABI version 99"),
            std::string::npos)
      << any.output;
  EXPECT_NE(any.output.find("; and 1 more (`loom plugins` lists every refused library)."), std::string::npos) << any.output;
}

}  // namespace
}  // namespace loom::test
