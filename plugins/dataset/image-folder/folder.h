// Finds the images of an image-folder dataset on disk:
//   root/<class>/**/*.{jpg,jpeg,png}                               one pool, split by test_fraction
//   root/train/<class>/**/*.{…} and root/test/<class>/**/*.{…}     a given train/test split
// Class names are the sorted class folder names; extensions match case-insensitively; names starting
// with '.' are skipped; symlinked files are followed, symlinked folders are not.
//
// Free of LibTorch on purpose: listing is std::filesystem only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace loom::image {

struct FolderFile {
  std::filesystem::path path;  ///< root / relative
  std::string relative;        ///< relative to root, '/'-separated (e.g. "train/cat/001.jpg")
  int64_t label = 0;           ///< index into FolderListing::classes
  bool test = false;           ///< under root/test/ (train/test layout only)
  uintmax_t size = 0;          ///< bytes; 0 when the file cannot be stat'ed (read_header reports why)
  int64_t mtime_ns = 0;        ///< modification time, ns since the epoch; 0 when unknown
};

struct FolderListing {
  std::filesystem::path root;           ///< absolute, normalised
  std::vector<std::string> classes;     ///< sorted
  std::vector<FolderFile> files;        ///< train files by (class, relative path), then test files the same way
  bool train_test_layout = false;
  int64_t ignored_files = 0;            ///< files without an image extension, and files directly in a split root
};

/// True for .jpg, .jpeg and .png in any letter case.
bool has_image_extension(const std::filesystem::path& file);

/// Lists `root`. Throws std::runtime_error, naming the folder and the fix, when root is not a
/// directory, has train/ without test/ (or the reverse), has fewer than two class folders, when train/
/// and test/ hold different class folders, or when a class folder holds no image.
FolderListing list_image_folder(const std::filesystem::path& root);

}  // namespace loom::image
