// The image-folder dataset through the real plugin library and the host Registry: JPEG/PNG files written
// here with libjpeg's and libpng's encoders; decode, resize (against torch's interpolate in Python), crop
// and channel conversion; corrupt files under each on_error/verify policy; the errors a user can hit;
// splits; fingerprint; and a short `loom run` on a generated folder.
#include "fifo_util.h"
#include "image_files.h"
#include "test_util.h"

#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <mutex>
#include <numeric>
#include <set>

namespace loom::test {
namespace {

// ---- harness ----------------------------------------------------------------------------------------

class RecordingLogger final : public Logger {
 public:
  void log(LogLevel level, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    lines_.emplace_back(level, std::string(message));
  }
  std::vector<std::string> lines(LogLevel level) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [l, m] : lines_)
      if (l == level) out.push_back(m);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<LogLevel, std::string>> lines_;
};

// The host's run context, with a logger whose lines the tests can read.
class TestRunContext final : public RunContext {
 public:
  Logger& logger() override { return recording; }
  c10::Device device() const override { return inner_.device(); }
  uint64_t seed() const override { return inner_.seed(); }
  int threads() const override { return inner_.threads(); }
  at::Generator generator(std::string_view stream) const override { return inner_.generator(stream); }
  fs::path run_dir() const override { return {}; }
  fs::path cache_dir() const override { return {}; }
  std::unique_ptr<ProgressReporter> progress(std::string_view label, int64_t total) override {
    return inner_.progress(label, total);
  }
  RecordingLogger recording;

 private:
  host::HostLogger host_logger_;
  host::HostRunContext inner_{host_logger_, c10::kCPU, 0, 2, {}, {}};
};

const host::Registry& registry() {
  static const host::Registry r = [] {
    host::Registry scanned;
    scanned.scan({LOOM_TEST_PLUGIN_DIR});
    return scanned;
  }();
  return r;
}

const host::Feature& feature() {
  const host::Feature* f = registry().find(Kind::Dataset, "image-folder");
  if (!f) throw std::runtime_error("no image-folder plugin in " LOOM_TEST_PLUGIN_DIR);
  return *f;
}

using Overrides = std::map<std::string, Value>;

// The dataset with its schema defaults, root and `overrides`, as the host creates it.
std::shared_ptr<Dataset> make(const fs::path& root, const Overrides& overrides = {}, TestRunContext* context = nullptr) {
  std::map<std::string, Value> values;
  for (const ParamSpec& spec : feature().info.params)
    if (spec.default_value) values[spec.name] = *spec.default_value;
  values["root"] = root.string();
  for (const auto& [k, v] : overrides) values[k] = v;
  const Params params(values);
  TestRunContext local;
  return registry().create<Dataset>(feature(), CreateContext{params, context ? *context : local, nullptr});
}

// The message make() fails with ("" when it succeeds).
std::string make_error(const fs::path& root, const Overrides& overrides = {}) {
  try {
    make(root, overrides);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// With mean 0 and std 1, load() returns pixels / 255: these are the uint8 pixels back.
const Overrides kRawPixels{{"mean", std::vector<double>{0.0}}, {"std", std::vector<double>{1.0}}};

Overrides with(Overrides base, const Overrides& more) {
  for (const auto& [k, v] : more) base[k] = v;
  return base;
}

at::Tensor pixels(const Dataset& d, const at::Tensor& indices) {
  return (d.load(indices) * 255.0).round().to(at::kByte);
}

at::Tensor all_indices(const Dataset& d) { return at::arange(d.size(), at::kLong); }

// A [C, H, W] uint8 tensor of interleaved pixels.
at::Tensor planar(const Pixels& p) {
  return torch::from_blob(const_cast<uint8_t*>(p.data.data()), {p.height, p.width, p.channels}, at::kByte)
      .permute({2, 0, 1})
      .clone();
}

uint8_t luma(uint8_t r, uint8_t g, uint8_t b) {  // PIL's convert("L")
  return static_cast<uint8_t>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

// ---- decode and channels ----------------------------------------------------------------------------

TEST(ImageFolder, DecodesPngExactlyAndJpegClosely) {
  TempDir dir;
  const Pixels grey = test_pattern(12, 20, 1, 1), rgb = test_pattern(12, 20, 3, 2);
  const Pixels smooth_grey = gradient(12, 20, 1), smooth_rgb = gradient(12, 20, 3);
  write_png(dir / "a/grey.png", grey);
  write_png(dir / "a/rgb.PNG", rgb);  // extensions match in any case
  write_jpeg(dir / "b/grey.jpg", smooth_grey);
  write_jpeg(dir / "b/rgb.jpeg", smooth_rgb);
  write_file(dir / "b/notes.txt", "not an image");

  const auto rgb3 = make(dir.path(), kRawPixels);
  ASSERT_EQ(rgb3->size(), 4);
  EXPECT_EQ(rgb3->spec().shape, (std::vector<int64_t>{3, 12, 20}));
  EXPECT_EQ(rgb3->spec().class_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(torch::equal(rgb3->labels(), torch::tensor({0, 0, 1, 1}, at::kLong)));
  const at::Tensor x3 = pixels(*rgb3, all_indices(*rgb3));
  EXPECT_TRUE(torch::equal(x3[0], planar(grey).expand({3, 12, 20}))) << "grey PNG -> RGB copies the value";
  EXPECT_TRUE(torch::equal(x3[1], planar(rgb)));
  for (const auto& [i, original] : {std::pair{2, &smooth_grey}, std::pair{3, &smooth_rgb}}) {
    const at::Tensor diff = (x3[i].to(at::kInt) - planar(*original).expand({3, 12, 20}).to(at::kInt)).abs();
    EXPECT_LE(diff.max().item<int>(), 12) << "JPEG " << i;
    EXPECT_LE(diff.to(at::kFloat).mean().item<float>(), 2.5f) << "JPEG " << i;
  }

  const auto grey1 = make(dir.path(), with(kRawPixels, {{"channels", int64_t{1}}}));
  EXPECT_EQ(grey1->spec().shape, (std::vector<int64_t>{1, 12, 20}));
  const at::Tensor x1 = pixels(*grey1, torch::tensor({0, 1}, at::kLong));
  EXPECT_TRUE(torch::equal(x1[0][0], planar(grey)[0]));
  at::Tensor expected = at::empty({12, 20}, at::kByte);
  for (int64_t y = 0; y < 12; ++y)
    for (int64_t x = 0; x < 20; ++x) expected[y][x] = luma(rgb.at(y, x, 0), rgb.at(y, x, 1), rgb.at(y, x, 2));
  EXPECT_TRUE(torch::equal(x1[1][0], expected)) << "RGB -> grey uses PIL's ITU-R 601 luma";
}

TEST(ImageFolder, NormalisesWithTheDeclaredPixelAffine) {
  TempDir dir;
  write_png(dir / "a/1.png", test_pattern(8, 8, 3, 1));
  write_png(dir / "b/1.png", test_pattern(8, 8, 3, 2));
  const auto d = make(dir.path());  // ImageNet's mean and std by default
  const SampleSpec spec = d->spec();
  ASSERT_EQ(spec.pixel_scale.size(), 3u);
  EXPECT_DOUBLE_EQ(spec.pixel_scale[0], 1.0 / (255.0 * 0.229));
  EXPECT_DOUBLE_EQ(spec.pixel_shift[2], -0.406 / 0.225);
  const at::Tensor raw = pixels(*make(dir.path(), kRawPixels), all_indices(*d));
  EXPECT_TRUE(torch::equal(d->load(all_indices(*d)), from_pixels(raw, spec)))
      << "load() must be from_pixels() of its uint8 pixels, so a cache may store those bit-exactly";

  const auto half = make(dir.path(), {{"dtype", std::string("float16")}});
  EXPECT_EQ(half->spec().dtype, at::kHalf);
  const at::Tensor h = half->load(all_indices(*d));
  EXPECT_EQ(h.scalar_type(), at::kHalf);
  EXPECT_TRUE(torch::allclose(h.to(at::kFloat), d->load(all_indices(*d)), 0.0, 2e-2));
  EXPECT_TRUE(torch::equal(h, from_pixels(raw, half->spec())));

  const auto grey = make(dir.path(), {{"channels", int64_t{1}}});
  EXPECT_DOUBLE_EQ(grey->spec().pixel_shift[0], -1.0) << "grey default: mean 0.5, std 0.5";
}

// ---- resize and crop ---------------------------------------------------------------------------------

TEST(ImageFolder, NearestResizeMatchesHandComputedPixels) {
  TempDir dir;
  Pixels p{6, 6, 1, {}};
  for (int64_t y = 0; y < 6; ++y)
    for (int64_t x = 0; x < 6; ++x) p.data.push_back(static_cast<uint8_t>(10 * y + x));
  write_png(dir / "a/1.png", p);
  write_png(dir / "b/1.png", p);
  const Overrides nearest = with(kRawPixels, {{"channels", int64_t{1}}, {"interpolation", std::string("nearest")}});

  // Shrinking 6 -> 3 takes source pixels floor((i + 0.5) * 2) = 1, 3, 5.
  const at::Tensor down = pixels(*make(dir.path(), with(nearest, {{"resize", int64_t{3}}})), torch::tensor({0L}))[0][0];
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(down[i][j].item<int>(), 10 * (2 * i + 1) + (2 * j + 1)) << i << "," << j;
  // Growing 6 -> 12 repeats every pixel twice in each direction; crop 8 keeps rows/cols 2..9.
  const at::Tensor up =
      pixels(*make(dir.path(), with(nearest, {{"resize", int64_t{12}}, {"crop", int64_t{8}}})), torch::tensor({0L}))[0][0];
  ASSERT_EQ(up.sizes(), (c10::IntArrayRef{8, 8}));
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(up[i][j].item<int>(), 10 * ((i + 2) / 2) + (j + 2) / 2) << i << "," << j;
}

TEST(ImageFolder, ResizeAndCropMatchTorchReference) {
  struct Case {
    int64_t h, w;
    int c;
    int64_t resize, crop;
    std::string mode;
  };
  std::vector<Case> cases;
  for (const char* mode : {"bilinear", "bicubic", "nearest", "area"}) {
    cases.push_back({23, 37, 3, 16, 0, mode});   // shrink by a non-integer factor, landscape
    cases.push_back({37, 23, 3, 50, 48, mode});  // grow, portrait, crop
    cases.push_back({30, 30, 1, 10, 8, mode});   // shrink by exactly 3, crop
    cases.push_back({29, 41, 1, 13, 11, mode});  // shrink by about 2.2, odd crop offsets
  }
  TempDir work;
  std::vector<at::Tensor> ours;
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    const Pixels p = test_pattern(c.h, c.w, c.c, static_cast<uint32_t>(k + 10), 80.0);
    const fs::path root = work / ("data" + std::to_string(k));
    write_png(root / "a/1.png", p);
    write_png(root / "b/1.png", p);
    const auto d = make(root, with(kRawPixels, {{"channels", int64_t{c.c}},
                                                {"resize", c.resize},
                                                {"crop", c.crop},
                                                {"interpolation", c.mode}}));
    ours.push_back(pixels(*d, torch::tensor({0L}))[0]);
    const std::string name = "case" + std::to_string(100 + k);
    write_bytes(work / (name + ".u8"), p.data);
    write_file(work / (name + ".txt"), std::to_string(c.h) + " " + std::to_string(c.w) + " " + std::to_string(c.c) +
                                           " " + std::to_string(c.resize) + " " + std::to_string(c.crop) + " " + c.mode);
  }
  const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " + LOOM_TEST_SOURCE_DIR +
                               "/tests/python/image_resize_reference.py " + work.path().string());
  ASSERT_EQ(py.exit_code, 0) << py.output;
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    SCOPED_TRACE(c.mode + " " + std::to_string(c.h) + "x" + std::to_string(c.w) + " resize " + std::to_string(c.resize) +
                 " crop " + std::to_string(c.crop));
    const std::vector<uint8_t> ref = read_bytes(work / ("case" + std::to_string(100 + k) + ".ref.u8"));
    ASSERT_EQ(static_cast<int64_t>(ref.size()), ours[k].numel());
    const at::Tensor expected = torch::from_blob(const_cast<uint8_t*>(ref.data()), ours[k].sizes(), at::kByte);
    const at::Tensor diff = (ours[k].to(at::kInt) - expected.to(at::kInt)).abs();
    // Float arithmetic in another order may land a value just across a rounding boundary: at most one
    // level, rarely.
    EXPECT_LE(diff.max().item<int>(), 1);
    EXPECT_LE(diff.gt(0).sum().item<int64_t>() * 200, ours[k].numel()) << "more than 0.5% of the values differ";
  }
}

// ---- corrupt files -----------------------------------------------------------------------------------

// Four good PNGs, random bytes named .jpg, a JPEG and a PNG cut short (their headers intact).
struct CorruptFolder {
  TempDir dir;
  CorruptFolder() {
    for (int i = 0; i < 2; ++i) {
      write_png(dir / ("a/ok" + std::to_string(i) + ".png"), test_pattern(64, 64, 3, static_cast<uint32_t>(i)));
      write_png(dir / ("b/ok" + std::to_string(i) + ".png"), test_pattern(64, 64, 3, static_cast<uint32_t>(i + 5)));
    }
    std::vector<uint8_t> noise(3000);
    for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint8_t>((i * 7919u + 13u) % 251u);
    write_bytes(noise_jpg(), noise);
    // Large enough that 60% of the file is well past the headers (a 16x16 JPEG is mostly tables).
    write_bytes(cut_jpg(), truncated(encode_jpeg(test_pattern(64, 64, 3, 9)), 0.6));
    write_png(dir / "tmp.png", test_pattern(64, 64, 3, 8));
    write_bytes(cut_png(), truncated(read_bytes(dir / "tmp.png"), 0.6));
    fs::remove(dir / "tmp.png");
  }
  fs::path noise_jpg() const { return dir / "a/noise.jpg"; }
  fs::path cut_jpg() const { return dir / "b/cut.jpg"; }
  fs::path cut_png() const { return dir / "a/cut.png"; }
};

TEST(ImageFolder, CorruptFileFailsNamingItsPath) {
  CorruptFolder f;
  const std::string error = make_error(f.dir.path());
  EXPECT_TRUE(contains(error, "image '" + f.noise_jpg().string() + "': not a JPEG or PNG file")) << error;
  EXPECT_TRUE(contains(error, "set on_error = \"skip\"")) << error;

  const std::string decode_error = make_error(f.dir.path(), {{"verify", std::string("decode")}});
  EXPECT_TRUE(contains(decode_error, "image '" + f.cut_png().string() + "'")) << decode_error;  // first in order
  EXPECT_TRUE(contains(decode_error, "(and 2 more unreadable files)")) << decode_error;
}

// A FIFO with an image's name must not hang the run: refused at once, by name, like any unreadable file.
TEST(ImageFolder, FifoNamedLikeAnImageIsRefusedNotWaitedOn) {
  TempDir dir;
  for (int i = 0; i < 2; ++i) {
    write_png(dir / ("a/ok" + std::to_string(i) + ".png"), test_pattern(32, 32, 3, static_cast<uint32_t>(i)));
    write_png(dir / ("b/ok" + std::to_string(i) + ".png"), test_pattern(32, 32, 3, static_cast<uint32_t>(i + 5)));
  }
  make_fifo(dir / "a/pipe.png");
  FifoWatchdog watchdog(dir / "a/pipe.png");
  for (const char* verify : {"header", "decode"}) {
    const std::string error = make_error(dir.path(), {{"verify", std::string(verify)}});
    EXPECT_TRUE(contains(error, "image '" + (dir / "a/pipe.png").string() + "': cannot open: " +
                                    (dir / "a/pipe.png").string() + " is a FIFO, not a regular file"))
        << verify << ": " << error;
  }
}

TEST(ImageFolder, SkipWithHeaderCheckLeavesOutBadHeadersAndLoadNamesTruncatedData) {
  CorruptFolder f;
  TestRunContext context;
  const auto d = make(f.dir.path(), {{"on_error", std::string("skip")}}, &context);
  EXPECT_EQ(d->size(), 6);  // the truncated files have intact headers
  EXPECT_EQ(d->counters(), (std::map<std::string, int64_t>{{"skipped_files", 1}}));
  const auto warnings = context.recording.lines(LogLevel::Warn);
  ASSERT_EQ(warnings.size(), 1u) << testing::PrintToString(warnings);
  EXPECT_TRUE(contains(warnings[0], f.noise_jpg().string())) << warnings[0];
  const auto info = context.recording.lines(LogLevel::Info);
  ASSERT_FALSE(info.empty());
  EXPECT_TRUE(contains(info.back(), "6 images in 2 classes")) << info.back();
  EXPECT_TRUE(contains(info.back(), "skipped 1 unreadable files")) << info.back();

  std::set<std::string> failed;
  for (int64_t i = 0; i < d->size(); ++i) {
    try {
      d->load(torch::tensor({i}));
    } catch (const std::exception& e) {
      const std::string what = e.what();
      EXPECT_TRUE(contains(what, "set verify = \"decode\" with on_error = \"skip\"")) << what;
      failed.insert(what.find(f.cut_jpg().string()) != std::string::npos   ? "jpg"
                    : what.find(f.cut_png().string()) != std::string::npos ? "png"
                                                                           : what);
      if (contains(what, f.cut_jpg().string())) EXPECT_TRUE(contains(what, "Premature end of JPEG file")) << what;
    }
  }
  EXPECT_EQ(failed, (std::set<std::string>{"jpg", "png"}));
}

TEST(ImageFolder, VerifyDecodeCatchesTruncatedDataUpFront) {
  CorruptFolder f;
  TestRunContext context;
  const auto d = make(f.dir.path(), {{"on_error", std::string("skip")}, {"verify", std::string("decode")}}, &context);
  EXPECT_EQ(d->size(), 4);
  EXPECT_EQ(d->counters().at("skipped_files"), 3);
  EXPECT_EQ(context.recording.lines(LogLevel::Warn).size(), 3u);
  EXPECT_EQ(d->load(all_indices(*d)).size(0), 4);  // everything left decodes
}

// ---- errors a user can hit ---------------------------------------------------------------------------

TEST(ImageFolder, LayoutErrorsSayWhatToFix) {
  TempDir dir;
  const Pixels p = test_pattern(8, 8, 1, 1);
  EXPECT_TRUE(contains(make_error(dir / "missing"), "is not a directory")) << make_error(dir / "missing");
  fs::create_directories(dir / "empty");
  EXPECT_TRUE(contains(make_error(dir / "empty"), "has no class folder")) << make_error(dir / "empty");

  write_png(dir / "one/cat/1.png", p);
  EXPECT_TRUE(contains(make_error(dir / "one"), "only one class folder ('cat')")) << make_error(dir / "one");

  write_png(dir / "hollow/cat/1.png", p);
  fs::create_directories(dir / "hollow/dog");
  write_file(dir / "hollow/dog/readme.txt", "no images here");
  const std::string hollow = make_error(dir / "hollow");
  EXPECT_TRUE(contains(hollow, "class folder '" + (dir / "hollow/dog").string() + "' holds no .jpg, .jpeg or .png image"))
      << hollow;

  write_png(dir / "half/train/cat/1.png", p);
  write_png(dir / "half/train/dog/1.png", p);
  EXPECT_TRUE(contains(make_error(dir / "half"), "has a train/ folder but no test/ one")) << make_error(dir / "half");

  for (const char* c : {"train/cat", "train/dog", "test/cat", "test/eel"}) write_png(dir / "mismatch" / c / "1.png", p);
  const std::string mismatch = make_error(dir / "mismatch");
  EXPECT_TRUE(contains(mismatch, "(only in train/: dog; only in test/: eel)")) << mismatch;
}

TEST(ImageFolder, SizeAndParameterErrorsSayWhatToFix) {
  TempDir dir;
  write_png(dir / "a/1.png", test_pattern(16, 16, 3, 1));
  write_png(dir / "a/2.png", test_pattern(16, 20, 3, 2));
  write_png(dir / "b/1.png", test_pattern(16, 16, 3, 3));
  const std::string sizes = make_error(dir.path());
  EXPECT_TRUE(contains(sizes, "'" + (dir / "a/2.png").string() + "' becomes 3x16x20 (CxHxW) while the first image, '" +
                                  (dir / "a/1.png").string() + "', becomes 3x16x16"))
      << sizes;
  EXPECT_TRUE(contains(sizes, "e.g. crop = 16")) << sizes;
  EXPECT_EQ(make(dir.path(), {{"crop", int64_t{16}}})->spec().shape, (std::vector<int64_t>{3, 16, 16}));

  const std::string crop = make_error(dir.path(), {{"crop", int64_t{20}}});
  EXPECT_TRUE(contains(crop, "image '" + (dir / "a/1.png").string() + "' is 16x16, smaller than crop = 20; set resize = 20"))
      << crop;
  EXPECT_EQ(make(dir.path(), {{"crop", int64_t{20}}, {"resize", int64_t{20}}})->spec().shape,
            (std::vector<int64_t>{3, 20, 20}));

  EXPECT_TRUE(contains(make_error(dir.path(), {{"crop", int64_t{20}}, {"resize", int64_t{10}}}),
                       "crop = 20 is larger than resize = 10"));
  EXPECT_TRUE(contains(make_error(dir.path(), {{"channels", int64_t{2}}}), "channels = 2 is not supported"));
  EXPECT_TRUE(contains(make_error(dir.path(), {{"crop", int64_t{16}}, {"mean", std::vector<double>{0.1, 0.2}}}),
                       "mean has 2 values but channels = 3"));
  EXPECT_TRUE(contains(make_error(dir.path(), {{"crop", int64_t{16}}, {"std", std::vector<double>{0.0}}}),
                       "std values must be positive"));
  const std::string labeled = make_error(dir.path(), {{"crop", int64_t{16}}, {"labeled_per_class", int64_t{2}}});
  EXPECT_TRUE(contains(labeled, "labeled_per_class=2 but class b has only")) << labeled;
}

// ---- splits ------------------------------------------------------------------------------------------

void expect_partition(const Dataset& d) {
  std::vector<int64_t> all;
  for (Split s : {Split::Labeled, Split::Unlabeled, Split::Val, Split::Test}) {
    const at::Tensor idx = d.indices(s);
    EXPECT_TRUE(torch::equal(idx, std::get<0>(idx.sort()))) << to_string(s) << " is not sorted";
    all.insert(all.end(), idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
  }
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(static_cast<size_t>(d.size()));
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected) << "the splits must be disjoint and cover every image";
}

TEST(ImageFolder, SplitsAreStratifiedDisjointAndSeeded) {
  TempDir dir;
  for (const char* c : {"ant", "bee", "cat"})
    for (int i = 0; i < 20; ++i) write_png(dir / c / (std::to_string(i) + ".png"), solid(4, 4, {static_cast<uint8_t>(i)}));
  const Overrides base{{"test_fraction", 0.25}, {"val_size", int64_t{6}}, {"labeled_per_class", int64_t{4}}};
  const auto d = make(dir.path(), base);
  expect_partition(*d);
  const at::Tensor labels = d->labels();
  EXPECT_TRUE(torch::equal(labels.index_select(0, d->indices(Split::Test)).bincount({}, 3), torch::tensor({5, 5, 5})));
  EXPECT_TRUE(torch::equal(labels.index_select(0, d->indices(Split::Labeled)).bincount({}, 3), torch::tensor({4, 4, 4})));
  EXPECT_EQ(d->indices(Split::Val).numel(), 6);
  EXPECT_EQ(d->indices(Split::Unlabeled).numel(), 60 - 15 - 6 - 12);

  const auto same = make(dir.path(), base);
  const auto other = make(dir.path(), with(base, {{"split_seed", int64_t{1}}}));
  EXPECT_TRUE(torch::equal(same->indices(Split::Test), d->indices(Split::Test)));
  EXPECT_TRUE(torch::equal(same->indices(Split::Labeled), d->indices(Split::Labeled)));
  EXPECT_FALSE(torch::equal(other->indices(Split::Test), d->indices(Split::Test)));

  const auto fraction = make(dir.path(), {{"test_fraction", 0.25}, {"val_fraction", 0.2}});
  expect_partition(*fraction);
  EXPECT_EQ(fraction->indices(Split::Val).numel(), 9);  // round(0.2 * 45)
  EXPECT_EQ(fraction->indices(Split::Unlabeled).numel(), 0);
}

TEST(ImageFolder, TrainAndTestFoldersGiveTheTestSplit) {
  TempDir dir;
  for (const char* split : {"train", "test"})
    for (const char* c : {"cat", "dog"})
      for (int i = 0; i < (std::string(split) == "train" ? 5 : 3); ++i)
        write_png(dir / split / c / (std::to_string(i) + ".png"), solid(4, 4, {static_cast<uint8_t>(i)}));
  const auto d = make(dir.path(), {{"val_size", int64_t{2}}});
  ASSERT_EQ(d->size(), 16);
  expect_partition(*d);
  EXPECT_TRUE(torch::equal(d->indices(Split::Test), at::arange(10, 16, at::kLong)));
  EXPECT_TRUE(torch::equal(d->labels().slice(0, 10), torch::tensor({0, 0, 0, 1, 1, 1}, at::kLong)));
  EXPECT_EQ(d->indices(Split::Val).numel(), 2);
}

// ---- fingerprint -------------------------------------------------------------------------------------

TEST(ImageFolder, FingerprintNamesItsInputsAndChangesWithThem) {
  TempDir dir;
  write_png(dir / "a/1.png", test_pattern(8, 8, 3, 1));
  write_png(dir / "b/1.png", test_pattern(8, 8, 3, 2));
  const std::string fp = make(dir.path())->fingerprint();
  EXPECT_EQ(fp.rfind("image-folder/1.0.0;root=" + fs::absolute(dir.path()).lexically_normal().string() +
                         ";resize=0;interpolation=bilinear;crop=0;channels=3;mean=0.485,0.456,0.406;std=0.229,0.224,0.225;"
                         "dtype=float32;files=2:",
                     0),
            0u)
      << fp;
  EXPECT_EQ(make(dir.path())->fingerprint(), fp);
  EXPECT_EQ(make(dir.path(), {{"split_seed", int64_t{3}}})->fingerprint(), fp) << "splits do not change load()'s bytes";
  EXPECT_TRUE(contains(make(dir.path(), {{"resize", int64_t{6}}})->fingerprint(), ";resize=6;"));
  EXPECT_NE(make(dir.path(), {{"interpolation", std::string("area")}})->fingerprint(), fp);
  EXPECT_NE(make(dir.path(), {{"dtype", std::string("float16")}})->fingerprint(), fp);

  fs::last_write_time(dir / "b/1.png", fs::last_write_time(dir / "b/1.png") + std::chrono::seconds(5));
  const std::string touched = make(dir.path())->fingerprint();
  EXPECT_NE(touched, fp);
  EXPECT_EQ(touched.substr(0, touched.rfind(':')), fp.substr(0, fp.rfind(':'))) << "only the files item changes";
}

// ---- end to end --------------------------------------------------------------------------------------

TEST(ImageFolder, LoomRunTrainsOnAGeneratedFolder) {
  TempDir dir;
  write_easy_folder(dir / "images", 4, 30, 16);
  write_bytes(dir / "images/class1/zz-broken.png", {0x89, 'P', 'N', 'G', 1, 2, 3});
  write_file(dir / "run.toml", R"([run]
name = "images"
seed = 3
epochs = 4
threads = 1
device = "cpu"
output_dir = "out"
[loader]
batch_size = 16
[dataset]
plugin = "image-folder"
root = "images"
channels = 1
on_error = "skip"
[[augmentation]]   # no flip: the classes differ by quadrant, a mirror would turn one class into another
plugin = "random-crop"
padding = 1
[model]
plugin = "mlp"
hidden = [32]
[optimizer]
name = "adamw"
lr = 0.003
)");
  const CommandResult r = loom("run " + (dir / "run.toml").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "image-folder: 120 images in 4 classes")) << r.output;
  EXPECT_TRUE(contains(r.output, "zz-broken.png")) << r.output;
  const fs::path run_dir = only_run_dir(dir / "out", "images");
  ASSERT_FALSE(run_dir.empty());
  const auto summary = nlohmann::json::parse(read_file(run_dir / "summary.json"));
  EXPECT_EQ(summary["dataset/skipped_files"], 1) << summary.dump(2);
  EXPECT_GE(summary["test_accuracy"].get<double>(), 0.9) << summary.dump(2);
  const auto metrics = read_jsonl(run_dir / "metrics.jsonl");
  ASSERT_FALSE(metrics.empty());
  EXPECT_EQ(metrics[0]["dataset/skipped_files"], 1) << metrics[0].dump();
}

TEST(ImageFolder, MakeImageFolderScriptWritesALoadableFolder) {
  const fs::path file = "train-images-idx3-ubyte.gz";
  if (!fs::exists(fs::path("/usr/share/datasets/fashion-mnist") / file) &&
      !fs::exists(fs::path(LOOM_TEST_SOURCE_DIR) / ".gpu-deps/data/fashion-mnist" / file))
    GTEST_SKIP() << "no Fashion-MNIST IDX files (Debian's dataset-fashion-mnist package)";
  TempDir dir;
  const CommandResult r = run(std::string(LOOM_TEST_PYTHON) + " " + LOOM_TEST_SOURCE_DIR +
                              "/scripts/make-image-folder.py --per-class 3 --size 20 --out " + (dir / "fm").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto d = make(dir / "fm", with(kRawPixels, {{"channels", int64_t{1}}}));
  EXPECT_EQ(d->size(), 30);
  EXPECT_EQ(d->spec().num_classes, 10);
  EXPECT_EQ(d->spec().shape, (std::vector<int64_t>{1, 20, 20}));
  EXPECT_GT(pixels(*d, all_indices(*d)).to(at::kFloat).std().item<float>(), 10.0f) << "the images are not blank";
}

}  // namespace
}  // namespace loom::test
