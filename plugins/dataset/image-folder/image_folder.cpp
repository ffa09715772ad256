#include "image_folder.h"

#include "decode.h"
#include "folder.h"

#include "common/dataset/label_splits.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace loom::builtin {
namespace {

namespace fs = std::filesystem;

constexpr const char* kName = "image-folder";

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(std::string(kName) + ": " + what); }

// Shortest text that reads back as the same double ("0.485", not "0.48499999999999999").
std::string number(double v) {
  char buffer[32];
  const auto end = std::to_chars(buffer, buffer + sizeof buffer, v).ptr;
  return std::string(buffer, end);
}

std::string join_numbers(const std::vector<double>& values) {
  std::string out;
  for (double v : values) {
    if (!out.empty()) out += ',';
    out += number(v);
  }
  return out;
}

image::Preprocess parse_preprocess(const Params& p) {
  image::Preprocess pre;
  pre.resize = p.integer("resize");
  pre.interpolation = image::parse_interpolation(p.str("interpolation"));
  pre.crop = p.integer("crop");
  pre.channels = static_cast<int>(p.integer("channels"));
  if (pre.channels != 1 && pre.channels != 3)
    fail("channels = " + std::to_string(pre.channels) + " is not supported; use 1 (grey) or 3 (RGB)");
  if (pre.resize > 0 && pre.crop > pre.resize)
    fail("crop = " + std::to_string(pre.crop) + " is larger than resize = " + std::to_string(pre.resize) +
         " (the shorter side after resizing); lower crop or raise resize");
  return pre;
}

// mean or std: [] gives the default for the channel count, one value applies to every channel.
std::vector<double> per_channel(const Params& p, const std::string& name, int channels) {
  const std::vector<double> given = p.get<std::vector<double>>(name);
  const bool is_mean = name == "mean";
  if (given.empty()) {
    if (channels == 1) return {0.5};
    return is_mean ? std::vector<double>{0.485, 0.456, 0.406} : std::vector<double>{0.229, 0.224, 0.225};
  }
  std::vector<double> values = given;
  if (values.size() == 1) values.assign(static_cast<size_t>(channels), given[0]);
  if (static_cast<int>(values.size()) != channels)
    fail(name + " has " + std::to_string(given.size()) + " values but channels = " + std::to_string(channels) +
         "; give one value per channel, one value for all channels, or [] for the default");
  if (!is_mean)
    for (double v : values)
      if (!(v > 0.0)) fail("std values must be positive, got " + number(v));
  return values;
}

// 64-bit FNV-1a: a short, stable digest of the file list for the fingerprint.
struct Fnv1a {
  uint64_t hash = 0xcbf29ce484222325ull;
  void add(std::string_view bytes) {
    for (unsigned char c : bytes) {
      hash ^= c;
      hash *= 0x100000001b3ull;
    }
  }
  std::string hex() const {
    char buffer[17];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(hash));
    return buffer;
  }
};

struct FileCheck {
  std::string error;  // empty: the file is usable
  image::Size size;
};

// Reads every file's header, or decodes every file, in parallel over the intra-op threads.
std::vector<FileCheck> check_files(const std::vector<image::FolderFile>& files, bool full_decode, RunContext& run) {
  const auto n = static_cast<int64_t>(files.size());
  std::vector<FileCheck> checks(files.size());
  const auto progress = run.progress(full_decode ? "image-folder: decoding" : "image-folder: reading headers", n);
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    constexpr int64_t kReportEvery = 64;
    for (int64_t i = begin; i < end; ++i) {
      FileCheck& check = checks[static_cast<size_t>(i)];
      const fs::path& path = files[static_cast<size_t>(i)].path;
      try {
        if (full_decode) {
          const image::Image image = image::decode(path);
          check.size = {image.height, image.width};
        } else {
          const image::ImageHeader header = image::read_header(path);
          check.size = {header.height, header.width};
        }
      } catch (const image::ImageError& e) {
        check.error = e.what();
      }
      if ((i - begin + 1) % kReportEvery == 0 || i + 1 == end) progress->advance((i - begin) % kReportEvery + 1);
    }
  });
  progress->finish();
  return checks;
}

std::string describe(image::Size s, int channels) {
  return std::to_string(channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
}

}  // namespace

namespace {
constexpr const char* kMovedToAugmentation =
    "the dataset's random crop and flip moved to the augmentation kind (Loom 0.4); remove augment/pad/flip from [dataset] and add two tables instead: [[augmentation]] plugin = \"random-crop\" padding = <pad> followed by [[augmentation]] plugin = \"flip\" (docs/augmentation.md)";
}  // namespace

FeatureInfo ImageFolder::info() {
  return {
      .name = kName,
      .version = "1.0.0",
      .summary = "JPEG/PNG images in one sub-folder per class (torchvision's ImageFolder layout)",
      .params = {
          ParamSpec::path("root").required()
              .doc("folder with one sub-folder of .jpg/.jpeg/.png images per class, or train/ and test/ folders that each hold them"),
          ParamSpec::integer("resize", 0).at_least(0)
              .doc("shorter side after resizing, in pixels (torchvision's Resize(n)); 0 keeps the size"),
          ParamSpec::choice("interpolation", "bilinear", {"bilinear", "bicubic", "nearest", "area"})
              .doc("resize filter, antialiased when shrinking as in PIL/torchvision; area: mean over each pixel's footprint"),
          ParamSpec::integer("crop", 0).at_least(0)
              .doc("side of the square center crop after resizing; 0 keeps the whole image"),
          ParamSpec::integer("channels", 3).range(1, 3)
              .doc("1 (grey; RGB images use PIL's ITU-R 601 luma) or 3 (RGB; grey images are replicated)"),
          ParamSpec::float_list("mean", {})
              .doc("per-channel mean in [0, 1] units; [] = ImageNet's (0.485, 0.456, 0.406) for 3 channels, 0.5 for 1"),
          ParamSpec::float_list("std", {})
              .doc("per-channel standard deviation; [] = ImageNet's (0.229, 0.224, 0.225) for 3 channels, 0.5 for 1"),
          ParamSpec::choice("dtype", "float32", {"float32", "float16"}).doc("dtype of the samples load() returns"),
          ParamSpec::removed("augment", kMovedToAugmentation),
          ParamSpec::removed("pad", kMovedToAugmentation),
          ParamSpec::removed("flip", kMovedToAugmentation),
          ParamSpec::real("test_fraction", 0.2).range(0.0, 1.0)
              .doc("without train/ and test/ folders: fraction of each class's images held out for testing"),
          ParamSpec::integer("val_size", 0).at_least(0)
              .doc("training images held out for validation; 0 uses val_fraction instead"),
          ParamSpec::real("val_fraction", 0.1).range(0.0, 1.0)
              .doc("fraction of the training images held out for validation (when val_size is 0)"),
          ParamSpec::integer("labeled_per_class", 0).at_least(0)
              .doc("labeled training images per class; 0 uses labeled_fraction instead"),
          ParamSpec::real("labeled_fraction", 1.0).range(0.0, 1.0)
              .doc("fraction of the non-validation training images that keep their labels"),
          ParamSpec::integer("split_seed", 0)
              .doc("seeds the test (test_fraction), val and labeled/unlabeled partitions (independent of the run seed)"),
          ParamSpec::choice("on_error", "fail", {"fail", "skip"})
              .doc("an unreadable or corrupt image: fail, or leave it out (logged, counted as dataset/skipped_files)"),
          ParamSpec::choice("verify", "header", {"header", "decode"})
              .doc("checked at start: each file's header (cheap) or a full decode of every file (catches truncated data)"),
      },
  };
}

ImageFolder::ImageFolder(const CreateContext& ctx)
    : preprocess_(parse_preprocess(ctx.params)) {
  const auto started = std::chrono::steady_clock::now();
  const Params& params = ctx.params;
  const int channels = preprocess_.channels;
  const std::vector<double> mean = per_channel(params, "mean", channels);
  const std::vector<double> std = per_channel(params, "std", channels);
  const std::string dtype = params.str("dtype");
  const bool skip = params.str("on_error") == "skip";
  const std::string verify = params.str("verify");

  const image::FolderListing listing = image::list_image_folder(params.str("root"));
  const std::vector<FileCheck> checks = check_files(listing.files, verify == "decode", ctx.run);

  // Unreadable files: fail on the first (in listing order), or leave every one out.
  std::vector<size_t> kept;
  int64_t bad = 0;
  const FileCheck* first_bad = nullptr;
  for (size_t i = 0; i < checks.size(); ++i) {
    if (checks[i].error.empty()) {
      kept.push_back(i);
      continue;
    }
    ++bad;
    if (!first_bad) first_bad = &checks[i];
    if (skip) ctx.run.logger().warn(std::string(kName) + ": skipping " + checks[i].error);
  }
  if (bad > 0 && !skip)
    fail(first_bad->error + (bad > 1 ? " (and " + std::to_string(bad - 1) + " more unreadable files)" : "") +
         "; replace or remove it, or set on_error = \"skip\" to leave unreadable files out");
  skipped_ = bad;

  // Every class must keep images, and every image must end the same size.
  std::vector<int64_t> per_class(listing.classes.size() * 2, 0);
  std::optional<image::Size> output;
  const image::FolderFile* first_file = nullptr;
  for (size_t i : kept) {
    const image::FolderFile& file = listing.files[i];
    ++per_class[static_cast<size_t>(file.label) * 2 + (file.test ? 1 : 0)];
    image::Size size;
    try {
      size = image::output_size(checks[i].size, preprocess_);
    } catch (const std::invalid_argument& e) {
      fail("image '" + file.path.string() + "' " + e.what());
    }
    if (!output) {
      output = size;
      first_file = &file;
    } else if (!(size == *output)) {
      const int64_t side = std::min({size.height, size.width, output->height, output->width});
      fail("every sample must end the same size, but '" + file.path.string() + "' becomes " + describe(size, channels) +
           " (CxHxW) while the first image, '" + first_file->path.string() + "', becomes " + describe(*output, channels) +
           "; set crop (a square center crop) so every image ends the same size, e.g. crop = " + std::to_string(side) +
           " (with resize = " + std::to_string(side) + " or more if some images are smaller)");
    }
  }
  for (size_t c = 0; c < listing.classes.size(); ++c)
    for (int test = 0; test < (listing.train_test_layout ? 2 : 1); ++test)
      if (per_class[c * 2 + static_cast<size_t>(test)] == 0)
        fail("class '" + listing.classes[c] + "' has no readable image left in '" +
             (listing.root / (listing.train_test_layout ? (test ? "test" : "train") : "") / listing.classes[c]).string() +
             "' after skipping " + std::to_string(bad) + " unreadable files; add readable images to it");

  std::vector<bool> is_test;
  std::vector<int64_t> labels;
  Fnv1a files_hash;
  for (size_t i : kept) {
    const image::FolderFile& file = listing.files[i];
    files_.push_back(file.path);
    labels.push_back(file.label);
    is_test.push_back(file.test);
    files_hash.add(file.relative + '\0' + std::to_string(file.size) + '\0' + std::to_string(file.mtime_ns) + '\n');
  }
  labels_ = at::tensor(labels, at::kLong);

  spec_.shape = {channels, output->height, output->width};
  spec_.dtype = dtype == "float16" ? at::kHalf : at::kFloat;
  spec_.num_classes = static_cast<int64_t>(listing.classes.size());
  spec_.class_names = listing.classes;
  for (int c = 0; c < channels; ++c) {
    // from_pixels(p) = p / 255 normalised by (mean, std), as the declared affine of uint8 pixels.
    spec_.pixel_scale.push_back(1.0 / (255.0 * std[static_cast<size_t>(c)]));
    spec_.pixel_shift.push_back(-mean[static_cast<size_t>(c)] / std[static_cast<size_t>(c)]);
  }

  make_splits(params, is_test);

  std::ostringstream fp;
  fp << kName << "/" << info().version << ";root=" << listing.root.string() << ";resize=" << preprocess_.resize
     << ";interpolation=" << params.str("interpolation") << ";crop=" << preprocess_.crop << ";channels=" << channels
     << ";mean=" << join_numbers(mean) << ";std=" << join_numbers(std) << ";dtype=" << dtype
     << ";files=" << files_.size() << ":" << files_hash.hex();
  fingerprint_ = fp.str();

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::ostringstream msg;
  msg << kName << ": " << size() << " images in " << spec_.num_classes << " classes from " << listing.root.string()
      << (listing.train_test_layout ? " (train/ and test/ folders)" : "") << ", samples "
      << describe(*output, channels) << " " << dtype << "; " << (verify == "decode" ? "decoded" : "read the headers of")
      << " " << listing.files.size() << " files in " << number(std::round(seconds * 100.0) / 100.0) << " s; labeled "
      << splits_.labeled.size(0) << ", unlabeled " << splits_.unlabeled.size(0) << ", val " << splits_.val.size(0)
      << ", test " << splits_.test.size(0) << "; skipped " << skipped_ << " unreadable files";
  if (listing.ignored_files > 0)
    msg << "; ignored " << listing.ignored_files << " files that are not .jpg/.jpeg/.png or not in a class folder";
  ctx.run.logger().info(msg.str());
}

void ImageFolder::make_splits(const Params& params, const std::vector<bool>& is_test) {
  // A generator of its own, so the partition depends on split_seed only, never on the run seed.
  at::Generator generator =
      at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(params.integer("split_seed")));
  const at::Tensor test_mask = at::empty({size()}, at::kBool);
  bool* mask = test_mask.data_ptr<bool>();
  for (size_t i = 0; i < is_test.size(); ++i) mask[i] = is_test[i];

  const bool given_split = test_mask.any().item<bool>();
  const double test_fraction = params.real("test_fraction");
  if (!given_split && test_fraction > 0.0) {
    // Stratified: round(test_fraction * n_c) images of each class c, chosen in a seeded order.
    for (int64_t c = 0; c < spec_.num_classes; ++c) {
      const at::Tensor members = (labels_ == c).nonzero().squeeze(1);
      const auto count = static_cast<int64_t>(std::llround(test_fraction * static_cast<double>(members.size(0))));
      const at::Tensor chosen = members.index_select(0, at::randperm(members.size(0), generator, at::kLong).narrow(0, 0, count));
      test_mask.index_fill_(0, chosen, true);
    }
  }
  splits_.test = test_mask.nonzero().squeeze(1);
  const at::Tensor pool = test_mask.logical_not().nonzero().squeeze(1);
  if (pool.size(0) == 0)
    fail("test_fraction = " + number(test_fraction) + " leaves no training images; lower it");

  dataset_common::PoolSplitOptions options;
  options.labeled_per_class = params.integer("labeled_per_class");
  options.labeled_fraction = params.real("labeled_fraction");
  if (params.integer("val_size") > 0) {
    options.val_size = params.integer("val_size");
    options.val_param = "val_size=" + std::to_string(options.val_size);
  } else {
    const double fraction = params.real("val_fraction");
    options.val_size = static_cast<int64_t>(std::llround(fraction * static_cast<double>(pool.size(0))));
    options.val_param = "val_fraction=" + number(fraction);
  }
  dataset_common::split_pool(splits_, pool, labels_, spec_.class_names, options, generator, kName);
}

at::Tensor ImageFolder::load(const at::Tensor& indices) const {
  if (indices.scalar_type() != at::kLong || indices.dim() != 1)
    throw std::invalid_argument("image-folder: load() wants a 1-D int64 index tensor");
  const at::Tensor index = indices.contiguous();
  const int64_t n = index.size(0);
  const int64_t* ix = index.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (ix[i] < 0 || ix[i] >= size())
      throw std::out_of_range("image-folder: index " + std::to_string(ix[i]) + " is outside 0.." +
                              std::to_string(size() - 1));

  const image::Size expected{spec_.shape[1], spec_.shape[2]};
  const int64_t sample_bytes = spec_.shape[0] * expected.height * expected.width;
  at::Tensor pixels = at::empty({n, spec_.shape[0], expected.height, expected.width}, at::kByte);
  uint8_t* out = pixels.data_ptr<uint8_t>();
  // One image per task: decoding dominates, and images differ in cost.
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const fs::path& file = files_[static_cast<size_t>(ix[i])];
      image::Image decoded;
      try {
        decoded = image::decode(file);
      } catch (const image::ImageError& e) {
        throw std::runtime_error(std::string(kName) + ": " + e.what() +
                                 "; only headers were checked at start (verify = \"header\"): set verify = \"decode\" "
                                 "with on_error = \"skip\" to find such files up front and leave them out");
      }
      image::Size size;
      try {
        size = image::output_size({decoded.height, decoded.width}, preprocess_);
      } catch (const std::invalid_argument&) {
        size = {};
      }
      if (!(size == expected))
        throw std::runtime_error(std::string(kName) + ": image '" + file.string() + "' is now " +
                                 std::to_string(decoded.width) + "x" + std::to_string(decoded.height) +
                                 " and no longer gives " + describe(expected, static_cast<int>(spec_.shape[0])) +
                                 " samples: it changed after the dataset was created; start again");
      image::preprocess(decoded, preprocess_, out + i * sample_bytes);
    }
  });
  // from_pixels() is the declared pixel affine: a cache storing uint8 pixels reproduces these bytes exactly.
  return from_pixels(pixels, spec_);
}

}  // namespace loom::builtin
