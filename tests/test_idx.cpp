// The IDX reader of the fashion-mnist plugin, on tiny gzipped files generated here.
#include "fifo_util.h"
#include "test_util.h"

#include "idx.h"

#include <gtest/gtest.h>
#include <zlib.h>

namespace loom::test {
namespace {

void put_be32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

void write_gz(const fs::path& file, const std::string& bytes) {
  gzFile f = gzopen(file.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

std::string images(uint32_t n, uint32_t rows, uint32_t cols, size_t payload_bytes) {
  std::string s;
  put_be32(s, 0x00000803);
  put_be32(s, n);
  put_be32(s, rows);
  put_be32(s, cols);
  for (size_t i = 0; i < payload_bytes; ++i) s.push_back(static_cast<char>(i * 7 % 256));
  return s;
}

TEST(Idx, ReadsImagesAndLabels) {
  TempDir dir;
  write_gz(dir / "img.gz", images(3, 2, 2, 12));
  std::string labels;
  put_be32(labels, 0x00000801);
  put_be32(labels, 3);
  labels += std::string("\x02\x00\x09", 3);
  write_gz(dir / "lab.gz", labels);

  const idx::IdxArray img = idx::read_idx_gz(dir / "img.gz", idx::kImagesMagic);
  EXPECT_EQ(img.dims, (std::vector<int64_t>{3, 2, 2}));
  ASSERT_EQ(img.data.size(), 12u);
  EXPECT_EQ(img.data[5], 35u);
  const idx::IdxArray lab = idx::read_idx_gz(dir / "lab.gz", idx::kLabelsMagic);
  EXPECT_EQ(lab.dims, (std::vector<int64_t>{3}));
  EXPECT_EQ(lab.data, (std::vector<uint8_t>{2, 0, 9}));
}

void expect_error(const fs::path& file, const std::string& fragment) {
  try {
    idx::read_idx_gz(file, idx::kImagesMagic);
    ADD_FAILURE() << "no error for " << file;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file.string()), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << what;
  }
}

TEST(Idx, RejectsTruncatedBadMagicAndMissingFiles) {
  TempDir dir;
  write_gz(dir / "short.gz", images(3, 2, 2, 11));
  expect_error(dir / "short.gz", "trunc");
  std::string bad = images(1, 1, 1, 1);
  bad[2] = 0x0d;  // element type float, not unsigned byte
  write_gz(dir / "type.gz", bad);
  expect_error(dir / "type.gz", "type");
  std::string magic = images(1, 1, 1, 1);
  magic[0] = 0x7f;
  write_gz(dir / "magic.gz", magic);
  expect_error(dir / "magic.gz", "magic");
  expect_error(dir / "missing.gz", "cannot open");
  write_gz(dir / "labels-as-images.gz", std::string("\0\0\x08\x01\0\0\0\x01\x05", 9));
  expect_error(dir / "labels-as-images.gz", "bad magic");
}

// A FIFO or a device where an IDX file should be is refused before zlib reads from it (it would block on
// the FIFO, and inflate /dev/zero's endless stream until memory runs out).
TEST(Idx, RefusesFifosAndDevicesAtOnce) {
  TempDir dir;
  make_fifo(dir / "train-images-idx3-ubyte.gz");
  FifoWatchdog watchdog(dir / "train-images-idx3-ubyte.gz");
  expect_error(dir / "train-images-idx3-ubyte.gz", "is a FIFO, not a regular file");
  fs::create_symlink("/dev/zero", dir / "zero.gz");
  expect_error(dir / "zero.gz", "is a symbolic link to /dev/zero, a character device, not a regular file");
}

TEST(Idx, CountMismatchBetweenImagesAndLabels) {
  TempDir dir;
  write_gz(dir / "img.gz", images(3, 2, 2, 12));
  std::string labels;
  put_be32(labels, 0x00000801);
  put_be32(labels, 2);
  labels += std::string("\x01\x02", 2);
  write_gz(dir / "lab.gz", labels);
  try {
    idx::read_labeled_images_gz(dir / "img.gz", dir / "lab.gz");
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("IDX count mismatch"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace loom::test
