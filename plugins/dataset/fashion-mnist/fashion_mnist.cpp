#include "fashion_mnist.h"

#include "idx.h"

#include "common/dataset/label_splits.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <sstream>
#include <stdexcept>

namespace loom::builtin {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kClasses = 10;
constexpr int64_t kSide = 28;
// Per-pixel mean and standard deviation of the training images, in [0, 1] units.
constexpr double kMean = 0.2860;
constexpr double kStd = 0.3530;

constexpr const char* kFiles[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

[[noreturn]] void missing(const fs::path& path, const char* what) {
  throw std::runtime_error(std::string("fashion-mnist: ") + what + " '" + path.string() +
                           "' does not exist; install Debian's dataset-fashion-mnist package or set "
                           "[dataset] root to the directory holding the four *-ubyte.gz files");
}

// Source identity for the fingerprint: a changed file changes its size or mtime.
std::string describe_file(const fs::path& path) {
  const auto mtime = std::chrono::file_clock::to_sys(fs::last_write_time(path)).time_since_epoch();
  std::ostringstream out;
  out << fs::absolute(path).string() << ':' << fs::file_size(path) << ':'
      << std::chrono::duration_cast<std::chrono::nanoseconds>(mtime).count();
  return out.str();
}

void check_pair(const idx::LabeledImages& pair, const fs::path& images) {
  if (pair.images.dims[1] != kSide || pair.images.dims[2] != kSide)
    throw std::runtime_error("fashion-mnist: '" + images.string() + "' holds " +
                             std::to_string(pair.images.dims[1]) + "x" + std::to_string(pair.images.dims[2]) +
                             " images, expected 28x28");
  for (uint8_t label : pair.labels.data)
    if (label >= kClasses)
      throw std::runtime_error("fashion-mnist: label " + std::to_string(label) +
                               " out of range 0..9 in the labels of '" + images.string() + "'");
}

}  // namespace

namespace {
constexpr const char* kMovedToAugmentation =
    "the dataset's random crop and flip moved to the augmentation kind (Loom 0.4); remove augment/pad from [dataset] and add two tables instead: [[augmentation]] plugin = \"random-crop\" padding = <pad> followed by [[augmentation]] plugin = \"flip\" (docs/augmentation.md)";
}  // namespace

FeatureInfo FashionMnist::info() {
  return {
      .name = "fashion-mnist",
      .version = "1.0.0",
      .summary = "Zalando's Fashion-MNIST: 28x28 grey clothing images in 10 classes (70000 samples)",
      .params = {
          ParamSpec::path("root", "/usr/share/datasets/fashion-mnist")
              .doc("directory holding the four gzipped IDX files"),
          ParamSpec::integer("labeled_per_class", 0).at_least(0)
              .doc("labeled training samples per class; 0 uses labeled_fraction instead"),
          ParamSpec::real("labeled_fraction", 1.0).range(0.0, 1.0)
              .doc("fraction of the non-validation training samples that keep their labels"),
          ParamSpec::integer("val_size", 5000).at_least(0)
              .doc("training samples held out for validation"),
          ParamSpec::choice("normalize", "standard", {"standard", "unit", "none"})
              .doc("standard: (x/255 - 0.2860)/0.3530; unit: x/255; none: raw 0..255"),
          ParamSpec::removed("augment", kMovedToAugmentation),
          ParamSpec::removed("pad", kMovedToAugmentation),
          ParamSpec::integer("split_seed", 0)
              .doc("seeds the labeled/unlabeled/val partition (independent of the run seed)"),
      },
  };
}

FashionMnist::FashionMnist(const CreateContext& ctx)
    : normalize_(ctx.params.str("normalize")) {
  const auto started = std::chrono::steady_clock::now();
  const fs::path root = ctx.params.str("root");
  if (!fs::is_directory(root)) missing(root, "root directory");
  fs::path files[4];
  for (int i = 0; i < 4; ++i) {
    files[i] = root / kFiles[i];
    // Only whether it is there: a FIFO or a device in its place is refused, with what it is, by the reader.
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(files[i], ec))) missing(files[i], "file");
  }

  // Inflating the two image files dominates start-up; do the test pair alongside the train pair.
  auto test_future = std::async(std::launch::async, [&] { return idx::read_labeled_images_gz(files[2], files[3]); });
  const idx::LabeledImages train = idx::read_labeled_images_gz(files[0], files[1]);
  const idx::LabeledImages test = test_future.get();
  check_pair(train, files[0]);
  check_pair(test, files[2]);

  const int64_t n_train = train.images.dims[0];
  const int64_t n_test = test.images.dims[0];
  images_ = at::empty({n_train + n_test, 1, kSide, kSide}, at::kByte);
  std::memcpy(images_.data_ptr<uint8_t>(), train.images.data.data(), train.images.data.size());
  std::memcpy(images_.data_ptr<uint8_t>() + train.images.data.size(), test.images.data.data(),
              test.images.data.size());
  labels_ = at::empty({n_train + n_test}, at::kByte);
  std::memcpy(labels_.data_ptr<uint8_t>(), train.labels.data.data(), n_train);
  std::memcpy(labels_.data_ptr<uint8_t>() + n_train, test.labels.data.data(), n_test);
  labels_ = labels_.to(at::kLong);

  if (normalize_ == "standard") {
    scale_ = 1.0 / (255.0 * kStd);
    shift_ = -kMean / kStd;
  } else if (normalize_ == "unit") {
    scale_ = 1.0 / 255.0;
  }

  make_splits(ctx.params, n_train);

  std::ostringstream fp;
  fp << "fashion-mnist/" << info().version << ";normalize=" << normalize_;
  for (const fs::path& file : files) fp << ";" << describe_file(file);
  fingerprint_ = fp.str();

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::ostringstream msg;
  msg << "fashion-mnist: " << size() << " samples from " << root.string() << " in " << seconds
      << " s; labeled " << splits_.labeled.size(0) << ", unlabeled " << splits_.unlabeled.size(0) << ", val " << splits_.val.size(0)
      << ", test " << splits_.test.size(0);
  ctx.run.logger().info(msg.str());
}

void FashionMnist::make_splits(const Params& params, int64_t n_train) {
  dataset_common::PoolSplitOptions options;
  options.val_size = params.integer("val_size");
  options.val_param = "val_size=" + std::to_string(options.val_size);
  options.labeled_per_class = params.integer("labeled_per_class");
  options.labeled_fraction = params.real("labeled_fraction");
  // A generator of its own, so the partition depends on split_seed only, never on the run seed.
  at::Generator generator =
      at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(params.integer("split_seed")));
  dataset_common::split_pool(splits_, at::arange(n_train, at::kLong), labels_, spec().class_names, options, generator,
                             "fashion-mnist");
  splits_.test = at::arange(n_train, size(), at::kLong);
}

SampleSpec FashionMnist::spec() const {
  return {.shape = {1, kSide, kSide},
          .dtype = at::kFloat,
          .num_classes = kClasses,
          .class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                          "Bag", "Ankle boot"},
          .pixel_scale = {scale_},
          .pixel_shift = {shift_}};
}

int64_t FashionMnist::size() const { return images_.size(0); }

at::Tensor FashionMnist::indices(Split split) const { return splits_[split]; }

at::Tensor FashionMnist::labels() const { return labels_; }

at::Tensor FashionMnist::load(const at::Tensor& indices) const {
  if (indices.scalar_type() != at::kLong || indices.dim() != 1)
    throw std::invalid_argument("fashion-mnist: load() wants a 1-D int64 index tensor");
  // from_pixels() is the declared pixel affine: a cache storing uint8 pixels reproduces these bytes exactly.
  return from_pixels(images_.index_select(0, indices), spec());
}

std::string FashionMnist::fingerprint() const { return fingerprint_; }

}  // namespace loom::builtin
