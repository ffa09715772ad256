#include "idx.h"

#include <loom/io.h>

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

namespace loom::idx {
namespace {

std::string hex(uint32_t value, int digits = 8) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%0*x", digits, value);
  return buffer;
}

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw std::runtime_error("IDX file '" + file.string() + "': " + what);
}

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to `size` bytes; returns how many arrived (fewer only at the end of the stream).
size_t read_some(gzFile f, const std::filesystem::path& file, uint8_t* out, size_t size) {
  size_t done = 0;
  while (done < size) {
    // gzread takes an unsigned count: feed it bounded chunks.
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size - done, size_t{1} << 30));
    const int got = gzread(f, out + done, chunk);
    if (got < 0) {
      int code = Z_OK;
      const char* message = gzerror(f, &code);
      fail(file, std::string("cannot decompress: ") + (message ? message : "zlib error"));
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  // A gzip stream cut short reads as a clean end of data; zlib flags it only through gzerror.
  int code = Z_OK;
  gzerror(f, &code);
  if (code == Z_BUF_ERROR) fail(file, "truncated gzip stream");
  return done;
}

uint32_t big_endian(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

IdxArray read_idx_gz(const std::filesystem::path& file, uint32_t expected_magic) {
  // A regular file, checked on the opened descriptor before zlib reads a byte (Loom::io): a FIFO or a device
  // in the dataset's directory is refused at once instead of blocking or inflating forever.
  int fd = -1;
  try {
    const io::InputFile in(file, io::kNoLimit, "IDX file");
    fd = ::dup(in.fd());
  } catch (const io::Error& e) {
    fail(file, std::string("cannot open: ") + e.what());
  }
  if (fd < 0) fail(file, std::string("cannot open: ") + std::strerror(errno));
  GzFile f(gzdopen(fd, "rb"));  // owns fd from here (gzclose closes it)
  if (!f) {
    ::close(fd);
    fail(file, "cannot open");
  }
  // The default 8 KiB buffer makes inflating ~50 MB noticeably slower.
  gzbuffer(f.get(), 1 << 20);

  uint8_t magic_bytes[4];
  if (read_some(f.get(), file, magic_bytes, 4) != 4) fail(file, "truncated: no IDX header");
  const uint32_t magic = big_endian(magic_bytes);
  if (magic_bytes[0] != 0 || magic_bytes[1] != 0)
    fail(file, "bad magic " + hex(magic) + " (not an IDX file; expected " + hex(expected_magic) + ")");
  if (magic_bytes[2] != 0x08)
    fail(file, "wrong element type " + hex(magic_bytes[2], 2) + " (only unsigned bytes, 0x08, are supported)");
  if (magic != expected_magic)
    fail(file, "bad magic " + hex(magic) + ": rank " + std::to_string(magic_bytes[3]) + ", expected " +
                   hex(expected_magic) + " (rank " + std::to_string(expected_magic & 0xff) + ")");

  const int rank = magic_bytes[3];
  std::vector<uint8_t> dim_bytes(static_cast<size_t>(rank) * 4);
  if (read_some(f.get(), file, dim_bytes.data(), dim_bytes.size()) != dim_bytes.size())
    fail(file, "truncated: header ends inside the dimensions");

  IdxArray array;
  uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const uint32_t dim = big_endian(&dim_bytes[static_cast<size_t>(d) * 4]);
    if (dim == 0) fail(file, "dimension " + std::to_string(d) + " is zero");
    // Guard the product against overflow from a corrupt header before it sizes an allocation.
    if (count > std::numeric_limits<uint64_t>::max() / dim) fail(file, "dimensions overflow");
    count *= dim;
    array.dims.push_back(dim);
  }

  // Grow while reading rather than trusting the header with one huge allocation.
  constexpr size_t kStep = size_t{16} << 20;
  while (array.data.size() < count) {
    const size_t offset = array.data.size();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(count - offset, kStep));
    array.data.resize(offset + want);
    const size_t got = read_some(f.get(), file, array.data.data() + offset, want);
    if (got != want)
      fail(file, "truncated: payload has " + std::to_string(offset + got) + " bytes, the dimensions need " +
                     std::to_string(count));
  }
  uint8_t extra;
  if (read_some(f.get(), file, &extra, 1) != 0)
    fail(file, "payload is longer than the dimensions say (" + std::to_string(count) + " bytes)");
  return array;
}

LabeledImages read_labeled_images_gz(const std::filesystem::path& images, const std::filesystem::path& labels) {
  LabeledImages out{read_idx_gz(images, kImagesMagic), read_idx_gz(labels, kLabelsMagic)};
  if (out.images.dims[0] != out.labels.dims[0])
    throw std::runtime_error("IDX count mismatch: '" + images.string() + "' holds " +
                             std::to_string(out.images.dims[0]) + " images but '" + labels.string() +
                             "' holds " + std::to_string(out.labels.dims[0]) + " labels");
  return out;
}

}  // namespace loom::idx
