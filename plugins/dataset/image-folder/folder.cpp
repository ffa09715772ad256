#include "folder.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>
#include <stdexcept>
#include <system_error>

namespace loom::image {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("image-folder: " + what); }

bool hidden(const fs::path& p) { return !p.filename().empty() && p.filename().string().front() == '.'; }

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Sorted names of the visible sub-folders of `dir`; counts the files there in `stray`.
std::vector<std::string> class_folders(const fs::path& dir, int64_t& stray) {
  std::vector<std::string> names;
  try {
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      if (hidden(e.path())) continue;
      if (e.is_directory())
        names.push_back(e.path().filename().string());
      else
        ++stray;
    }
  } catch (const fs::filesystem_error& e) {
    fail("cannot list '" + dir.string() + "': " + e.code().message());
  }
  std::sort(names.begin(), names.end());
  return names;
}

int64_t mtime_ns(const fs::directory_entry& e) {
  std::error_code ec;
  const auto t = e.last_write_time(ec);
  if (ec) return 0;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::file_clock::to_sys(t).time_since_epoch())
      .count();
}

// Appends the images under split_root/<class>/ (recursively) for every class, in (class, path) order.
void list_split(FolderListing& listing, const fs::path& split_root, const std::string& prefix, bool test) {
  for (size_t label = 0; label < listing.classes.size(); ++label) {
    const fs::path dir = split_root / listing.classes[label];
    std::vector<FolderFile> files;
    try {
      for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
        if (hidden(it->path())) {
          it.disable_recursion_pending();
          continue;
        }
        std::error_code ec;
        if (it->is_directory(ec)) continue;
        if (!has_image_extension(it->path())) {
          ++listing.ignored_files;
          continue;
        }
        FolderFile f;
        f.path = it->path();
        f.relative = prefix + listing.classes[label] + "/" + it->path().lexically_relative(dir).generic_string();
        f.label = static_cast<int64_t>(label);
        f.test = test;
        const uintmax_t size = it->file_size(ec);
        f.size = ec ? 0 : size;
        f.mtime_ns = mtime_ns(*it);
        files.push_back(std::move(f));
      }
    } catch (const fs::filesystem_error& e) {
      fail("cannot list '" + dir.string() + "': " + e.code().message());
    }
    if (files.empty())
      fail("class folder '" + dir.string() +
           "' holds no .jpg, .jpeg or .png image; add images to it or remove the folder");
    std::sort(files.begin(), files.end(), [](const FolderFile& a, const FolderFile& b) { return a.relative < b.relative; });
    for (FolderFile& f : files) listing.files.push_back(std::move(f));
  }
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

}  // namespace

bool has_image_extension(const fs::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

FolderListing list_image_folder(const fs::path& root_in) {
  FolderListing listing;
  if (!is_dir(root_in))
    fail("root '" + root_in.string() + "' is not a directory; set [dataset] root to a folder with one sub-folder "
         "of images per class (or train/ and test/ folders that each hold one per class)");
  listing.root = fs::absolute(root_in).lexically_normal();
  const fs::path& root = listing.root;

  const bool has_train = is_dir(root / "train"), has_test = is_dir(root / "test");
  if (has_train != has_test)
    fail("'" + root.string() + "' has a " + (has_train ? "train/" : "test/") + " folder but no " +
         (has_train ? "test/" : "train/") + " one: give it both (with the same class folders) for a fixed "
         "train/test split, or rename the folder if it is a class");
  listing.train_test_layout = has_train;

  if (listing.train_test_layout) {
    int64_t stray = 0;
    listing.classes = class_folders(root / "train", stray);
    const std::vector<std::string> test_classes = class_folders(root / "test", stray);
    listing.ignored_files += stray;
    if (listing.classes != test_classes) {
      std::vector<std::string> only_train, only_test;
      const std::set<std::string> train_set(listing.classes.begin(), listing.classes.end());
      const std::set<std::string> test_set(test_classes.begin(), test_classes.end());
      for (const auto& c : listing.classes) if (!test_set.count(c)) only_train.push_back(c);
      for (const auto& c : test_classes) if (!train_set.count(c)) only_test.push_back(c);
      fail("the class folders of '" + (root / "train").string() + "' and '" + (root / "test").string() +
           "' differ (only in train/: " + (only_train.empty() ? "none" : join(only_train)) + "; only in test/: " +
           (only_test.empty() ? "none" : join(only_test)) + "); both must hold the same classes");
    }
  } else {
    listing.classes = class_folders(root, listing.ignored_files);
  }
  const fs::path class_parent = listing.train_test_layout ? root / "train" : root;
  if (listing.classes.size() < 2)
    fail("'" + class_parent.string() + "' has " + (listing.classes.empty() ? "no class folder" : "only one class folder ('" + listing.classes[0] + "')") +
         "; put each class's images in a sub-folder named after the class (at least two classes)");

  if (listing.train_test_layout) {
    list_split(listing, root / "train", "train/", false);
    list_split(listing, root / "test", "test/", true);
  } else {
    list_split(listing, root, "", false);
  }
  return listing;
}

}  // namespace loom::image
