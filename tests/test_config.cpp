// Config validation: every error class names file:line:col (or the --set expression), says what was
// expected, and suggests the fix; all errors come at once.
#include "test_util.h"

#include "config/config.h"
#include "plugins/registry.h"
#include "config/resolve.h"

#include <gtest/gtest.h>

namespace loom::test {
namespace {

using host::Config;
using host::ConfigError;
using host::ConfigErrors;
using host::Registry;

const Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry();
    reg->scan({LOOM_TEST_PLUGIN_DIR, LOOM_TEST_FIXTURE_DIR});
    return reg;
  }();
  return *r;
}

const char* kValid = R"([run]
name = "t"
epochs = 2

[dataset]
plugin = "synthetic"
samples = 64

[model]
plugin = "mlp"
)";

/// Every error message of `text` (+ overrides), or an empty list when it resolves.
std::vector<std::string> errors_of(const TempDir& dir, const std::string& text, std::vector<std::string> overrides = {}) {
  const fs::path file = dir / "c.toml";
  write_file(file, text);
  try {
    Config config = Config::load(file);
    std::vector<ConfigError> errs;
    for (const auto& o : overrides) config.apply_override(o, errs);
    if (!errs.empty()) throw ConfigErrors(errs);
    host::resolve(config, registry());
  } catch (const ConfigErrors& e) {
    std::vector<std::string> out;
    for (const auto& err : e.errors()) out.push_back(err.str());
    return out;
  }
  return {};
}

class ConfigErrorsTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string file() const { return (dir / "c.toml").string(); }
};

TEST_F(ConfigErrorsTest, ValidConfigResolvesWithDefaults) {
  write_file(dir / "c.toml", kValid);
  const auto resolved = host::resolve(Config::load(dir / "c.toml"), registry());
  EXPECT_EQ(resolved.run.integer("epochs"), 2);
  EXPECT_EQ(resolved.loader.integer("batch_size"), 128);  // schema default
  EXPECT_EQ(resolved.one(Kind::Dataset).params.integer("samples"), 64);
  EXPECT_EQ(resolved.one(Kind::Precision).feature->info.name, "fp32");  // missing table → neutral
  EXPECT_EQ(resolved.one(Kind::Cache).feature->info.name, "none");
  const toml::table t = resolved.to_toml();
  EXPECT_EQ(t["optimizer"]["name"].value<std::string>(), "adamw");
  EXPECT_EQ(t["model"]["plugin"].value<std::string>(), "mlp");
}

TEST_F(ConfigErrorsTest, SyntaxErrorHasLineAndColumn) {
  auto e = errors_of(dir, "[run]\nseed = = 3\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].rfind(file() + ":2:8: error: TOML syntax error: ", 0), 0u) << e[0];
}

TEST_F(ConfigErrorsTest, UnknownTableSuggestsClosest) {
  auto e = errors_of(dir, std::string(kValid) + "\n[optimiser]\nlr = 0.1\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":12:2: error: unknown table [optimiser]; did you mean [optimizer]?");
}

TEST_F(ConfigErrorsTest, UnknownKeySuggestsClosest) {
  auto e = errors_of(dir, std::string(kValid) + "\n[loader]\nbatchsize = 32\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":13:1: error: unknown key 'batchsize' in [loader]; did you mean 'batch_size'?");
}

TEST_F(ConfigErrorsTest, UnknownPluginKeyNamesThePlugin) {
  auto e = errors_of(dir, std::string(kValid) + "hiden = [10]\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":11:1: error: unknown key 'hiden' in [model] (plugin 'mlp'); did you mean 'hidden'?");
}

TEST_F(ConfigErrorsTest, WrongType) {
  auto e = errors_of(dir, "[run]\nepochs = \"three\"\n[dataset]\nplugin = \"synthetic\"\n[model]\nplugin = \"mlp\"\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":2:10: error: 'epochs' in [run] must be an integer, found string \"three\"");
}

TEST_F(ConfigErrorsTest, OutOfRange) {
  auto e = errors_of(dir, std::string(kValid) + "\n[loader]\nbatch_size = 0\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":13:14: error: 'batch_size' in [loader] is 0, out of range: expected between 1 and 1048576");
}

TEST_F(ConfigErrorsTest, InvalidChoiceSuggests) {
  auto e = errors_of(dir, std::string(kValid) + "\n[optimizer]\nname = \"adam\"\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() +
                      ":13:8: error: 'name' in [optimizer] is \"adam\"; expected one of: sgd, adamw (did you mean "
                      "\"adamw\"?)");
}

TEST_F(ConfigErrorsTest, MissingRequiredKey) {
  auto e = errors_of(dir, std::string(kValid) + "\n[cache]\nplugin = \"fixture-required\"\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":12:1: error: missing required key 'level' in [cache] (plugin 'fixture-required') (int): "
                           "compression level");
}

TEST_F(ConfigErrorsTest, MissingRequiredTable) {
  auto e = errors_of(dir, "[dataset]\nplugin = \"synthetic\"\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":1:1: error: missing required table [model]; add it with plugin = \"<name>\" (known model "
                           "plugins: cnn, mlp, resnet, wide-resnet)");
}

TEST_F(ConfigErrorsTest, UnknownPluginListsKnownOnes) {
  auto e = errors_of(dir, "[dataset]\nplugin = \"synthetic\"\n[model]\nplugin = \"mpl\"\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].rfind(file() + ":4:10: error: unknown model plugin 'mpl'; did you mean 'mlp'? Known model plugins: "
                                "cnn, mlp",
                       0),
            0u)
      << e[0];
}

TEST_F(ConfigErrorsTest, OverrideErrorsNameTheSetExpression) {
  auto e = errors_of(dir, kValid, {"loader.batch_size=0"});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set loader.batch_size=0: error: 'batch_size' in [loader] is 0, out of range: expected between 1 "
                  "and 1048576");
  e = errors_of(dir, kValid, {"epochs=3"});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "--set epochs=3: error: expected section.key=value, e.g. --set accumulation.steps=8");
}

TEST_F(ConfigErrorsTest, OverridesReplaceFileValues) {
  write_file(dir / "c.toml", kValid);
  Config config = Config::load(dir / "c.toml");
  std::vector<ConfigError> errs;
  config.apply_override("run.epochs=5", errs);
  config.apply_override("dataset.noise=0.25", errs);
  config.apply_override("run.name=plain-string", errs);  // not a TOML value: taken as a string
  ASSERT_TRUE(errs.empty());
  const auto resolved = host::resolve(config, registry());
  EXPECT_EQ(resolved.run.integer("epochs"), 5);
  EXPECT_EQ(resolved.run.str("name"), "plain-string");
  EXPECT_DOUBLE_EQ(resolved.one(Kind::Dataset).params.real("noise"), 0.25);
}

TEST_F(ConfigErrorsTest, EveryErrorAtOnceInFileOrder) {
  auto e = errors_of(dir,
                     "[run]\nepochs = 0\ndevise = \"cpu\"\n[dataset]\nplugin = \"synthetic\"\nclasses = 1\n"
                     "[model]\nplugin = \"mlp\"\n");
  ASSERT_EQ(e.size(), 3u);
  EXPECT_NE(e[0].find(":2:10: error: 'epochs' in [run] is 0"), std::string::npos) << e[0];
  EXPECT_NE(e[1].find(":3:1: error: unknown key 'devise' in [run]; did you mean 'device'?"), std::string::npos) << e[1];
  EXPECT_NE(e[2].find(":6:11: error: 'classes' in [dataset] (plugin 'synthetic') is 1"), std::string::npos) << e[2];
}

TEST_F(ConfigErrorsTest, BareFileNameResolvesAgainstTheWorkingDirectory) {
  write_file(dir / "c.toml", kValid);
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  try {
    const auto resolved = host::resolve(Config::load("c.toml"), registry());
    EXPECT_EQ(resolved.file, dir / "c.toml");
  } catch (...) {
    fs::current_path(cwd);
    throw;
  }
  fs::current_path(cwd);
}

TEST_F(ConfigErrorsTest, PathsResolveAgainstTheConfigFile) {
  write_file(dir / "c.toml", "[run]\noutput_dir = \"out\"\n[dataset]\nplugin = \"synthetic\"\n[model]\nplugin = \"mlp\"\n");
  const auto resolved = host::resolve(Config::load(dir / "c.toml"), registry());
  EXPECT_EQ(fs::path(resolved.run.str("output_dir")), fs::weakly_canonical(dir / "out"));
}

// ---- [student_model] ---------------------------------------------------------------------------------
// kValid ends with [model] on lines 9-10; the tables appended below start at line 11.

TEST_F(ConfigErrorsTest, StudentModelValueErrorHasItsPosition) {
  auto e = errors_of(dir, std::string(kValid) + "\n[student_model]\nhidden = \"wide\"\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], file() + ":13:10: error: 'hidden' in [student_model] (plugin 'mlp', over [model]) must be an array "
                           "of integers, found string \"wide\"");
  // The same with the plugin named, and a range error next to it: each at its own place.
  e = errors_of(dir, std::string(kValid) + "\n[student_model]\nplugin = \"mlp\"\nhidden = \"wide\"\ndropout = 2.0\n");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].rfind(file() + ":14:10: error: 'hidden' in [student_model]", 0), 0u) << e[0];
  EXPECT_EQ(e[1], file() + ":15:11: error: 'dropout' in [student_model] (plugin 'mlp', over [model]) is 2, out of "
                           "range: expected between 0 and 0.9");
  // From --set: the expression.
  e = errors_of(dir, std::string(kValid) + "\n[student_model]\nhidden = [64]\n", {"student_model.dropout=2.0"});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].rfind("--set student_model.dropout=2.0: error: 'dropout' in [student_model]", 0), 0u) << e[0];
}

TEST_F(ConfigErrorsTest, ABadModelValueIsReportedOnceWithAStudentModel) {
  for (const std::string student : {"[student_model]\nhidden = [64]\n", "[student_model]\nplugin = \"mlp\"\n",
                                    "[student_model]\n"}) {
    SCOPED_TRACE(student);
    auto e = errors_of(dir, std::string(kValid) + "dropout = 2.0\n\n" + student);
    std::string all;
    for (const auto& line : e) all += line + "\n";
    ASSERT_EQ(e.size(), 1u) << all;
    EXPECT_EQ(e[0], file() + ":11:11: error: 'dropout' in [model] (plugin 'mlp') is 2, out of range: expected "
                             "between 0 and 0.9");
  }
  // [model]'s error and [student_model]'s own: both, each once, at its place.
  auto e = errors_of(dir, std::string(kValid) + "dropout = 2.0\n\n[student_model]\nbatchnorm = 1\n");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].rfind(file() + ":11:11: error: 'dropout' in [model]", 0), 0u) << e[0];
  EXPECT_EQ(e[1], file() + ":14:13: error: 'batchnorm' in [student_model] (plugin 'mlp', over [model]) must be a "
                           "boolean (true or false), found integer 1");
}

TEST_F(ConfigErrorsTest, StudentModelKeysReplaceModelKeys) {
  write_file(dir / "c.toml", std::string(kValid) + "dropout = 0.3\n\n[student_model]\nhidden = [64]\n");
  auto resolved = host::resolve(Config::load(dir / "c.toml"), registry());
  ASSERT_TRUE(resolved.student_model.has_value());
  const Params& student = resolved.student_model->params;
  EXPECT_EQ(resolved.student_model->feature->info.name, "mlp");
  EXPECT_EQ(resolved.student_model->table, "student_model");
  EXPECT_EQ(student.get<std::vector<int64_t>>("hidden"), (std::vector<int64_t>{64}));  // its own
  EXPECT_DOUBLE_EQ(student.real("dropout"), 0.3);                                      // [model]'s
  EXPECT_FALSE(student.boolean("batchnorm"));                                          // the default
  EXPECT_EQ(resolved.one(Kind::Model).params.get<std::vector<int64_t>>("hidden"), (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(student.values().size(), resolved.one(Kind::Model).params.values().size());

  // Another model plugin takes only its own keys: [model]'s dropout does not apply.
  write_file(dir / "c.toml",
             std::string(kValid) + "dropout = 0.3\n\n[student_model]\nplugin = \"cnn\"\nchannels = [8]\n");
  resolved = host::resolve(Config::load(dir / "c.toml"), registry());
  ASSERT_TRUE(resolved.student_model.has_value());
  EXPECT_EQ(resolved.student_model->feature->info.name, "cnn");
  EXPECT_EQ(resolved.student_model->params.get<std::vector<int64_t>>("channels"), (std::vector<int64_t>{8}));
  EXPECT_DOUBLE_EQ(resolved.student_model->params.real("dropout"), 0.25);  // cnn's default
}

}  // namespace
}  // namespace loom::test
