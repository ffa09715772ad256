// image-folder: a class-per-sub-folder directory of JPEG and PNG images (torchvision's ImageFolder
// layout), decoded with libjpeg-turbo and libpng, preprocessed deterministically in load() (resize,
// center crop, channels, normalisation). Random augmentation is the augmentation kind's (random-crop,
// flip, …), after any cache. See docs/datasets.md.
#pragma once

#include "preprocess.h"

#include <loom/plugin.h>

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace loom::builtin {

class ImageFolder final : public Dataset {
 public:
  static FeatureInfo info();
  explicit ImageFolder(const CreateContext& ctx);

  SampleSpec spec() const override { return spec_; }
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  at::Tensor indices(Split split) const override { return splits_[split]; }
  at::Tensor labels() const override { return labels_; }
  /// Decodes and preprocesses the batch in parallel (one image per task) straight into one uint8
  /// [B, C, H, W] tensor, then returns from_pixels() of it.
  at::Tensor load(const at::Tensor& indices) const override;
  std::string fingerprint() const override { return fingerprint_; }
  std::map<std::string, int64_t> counters() const override { return {{"skipped_files", skipped_}}; }

 private:
  void make_splits(const Params& params, const std::vector<bool>& is_test);

  std::vector<std::filesystem::path> files_;  // index -> file, train files first
  at::Tensor labels_;                         // int64 [size()]
  image::Preprocess preprocess_;
  SampleSpec spec_;
  SplitIndices splits_;
  int64_t skipped_ = 0;
  std::string fingerprint_;
};

}  // namespace loom::builtin
