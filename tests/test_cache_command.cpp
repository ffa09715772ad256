// `loom cache build|info|clear` through the real binary and the real npy cache plugin.
#include "test_util.h"

#include <gtest/gtest.h>

namespace loom::test {
namespace {

const std::string kConfig = R"(
[run]
name = "cache-cmd"
threads = 1
device = "cpu"
cache_dir = "cache"

[dataset]
plugin = "synthetic"
samples = 512
test_samples = 64
classes = 3

[model]
plugin = "mlp"

[cache]
plugin = "npy"
)";

struct CacheDir {
  TempDir dir;
  CacheDir() { write_file(dir / "c.toml", kConfig); }
  std::string config() const { return (dir / "c.toml").string(); }
  fs::path root() const { return dir / "cache" / "npy"; }
  std::vector<fs::path> entries() const {
    std::vector<fs::path> out;
    if (!fs::exists(root())) return out;
    for (const auto& e : fs::directory_iterator(root()))
      if (e.is_directory()) out.push_back(e.path());
    return out;
  }
};

TEST(CacheCommand, BuildThenInfoExplainsTheCache) {
  CacheDir c;
  const auto built = loom("cache build " + c.config());
  ASSERT_EQ(built.exit_code, 0) << built.output;
  ASSERT_EQ(c.entries().size(), 1u);
  const fs::path entry = c.entries()[0];
  EXPECT_NE(built.output.find("cache ready: " + entry.string()), std::string::npos) << built.output;

  const auto info = loom("cache info " + entry.string());
  ASSERT_EQ(info.exit_code, 0) << info.output;
  for (const char* expected : {"synthetic", "samples=512", "store_dtype=", "data.npy", "valid"})
    EXPECT_NE(info.output.find(expected), std::string::npos) << expected << "\n" << info.output;

  // A second build finds the valid cache and builds nothing.
  const auto again = loom("cache build " + c.config());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("building"), std::string::npos) << again.output;
  EXPECT_EQ(c.entries().size(), 1u);
}

TEST(CacheCommand, AChangedParamRebuildsAndSaysWhy) {
  CacheDir c;
  ASSERT_EQ(loom("cache build " + c.config()).exit_code, 0);
  const auto rebuilt = loom("cache build " + c.config() + " --set dataset.classes=4");
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.output;
  EXPECT_NE(rebuilt.output.find("classes=3 → classes=4"), std::string::npos) << rebuilt.output;
  EXPECT_EQ(c.entries().size(), 2u);
}

TEST(CacheCommand, ClearByConfigAndByRoot) {
  CacheDir c;
  ASSERT_EQ(loom("cache build " + c.config()).exit_code, 0);
  ASSERT_EQ(loom("cache build " + c.config() + " --set dataset.classes=4").exit_code, 0);
  ASSERT_EQ(c.entries().size(), 2u);

  const auto one = loom("cache clear " + c.config());
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_EQ(c.entries().size(), 1u);
  const auto nothing = loom("cache clear " + c.config());
  ASSERT_EQ(nothing.exit_code, 0) << nothing.output;
  EXPECT_NE(nothing.output.find("nothing to clear"), std::string::npos) << nothing.output;

  const auto all = loom("cache clear " + c.root().string());
  ASSERT_EQ(all.exit_code, 0) << all.output;
  EXPECT_TRUE(c.entries().empty());
}

TEST(CacheCommand, RefusesWhatIsNotACache) {
  CacheDir c;
  write_file(c.dir / "precious" / "notes.txt", "keep me");
  const auto info = loom("cache info " + (c.dir / "precious").string());
  EXPECT_EQ(info.exit_code, 2);
  EXPECT_NE(info.output.find("is not a Loom cache directory"), std::string::npos) << info.output;
  const auto clear = loom("cache clear " + (c.dir / "precious").string());
  EXPECT_EQ(clear.exit_code, 2);
  EXPECT_TRUE(fs::exists(c.dir / "precious" / "notes.txt"));

  const auto memory = loom("cache build " + c.config() + " --set cache.plugin=memory");
  EXPECT_EQ(memory.exit_code, 2);
  EXPECT_NE(memory.output.find("keeps nothing on disk"), std::string::npos) << memory.output;
  EXPECT_FALSE(fs::exists(c.dir / "cache"));
}

}  // namespace
}  // namespace loom::test
