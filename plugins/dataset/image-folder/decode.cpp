#include "decode.h"

// Order matters: jpeglib.h uses FILE and size_t without including anything, and jerror.h's message list
// depends on the version macros jpeglib.h defines.
#include <cstdio>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <loom/io.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstring>
#include <memory>
#include <string>

namespace loom::image {
namespace {

namespace fs = std::filesystem;

// A corrupt header must not make us allocate gigabytes: 2^28 pixels (16384 x 16384) is far beyond any
// training image.
constexpr int64_t kMaxPixels = int64_t{1} << 28;
constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw ImageError("image '" + file.string() + "': " + what);
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// A regular file, checked on the opened descriptor before the first read (Loom::io): a FIFO or a device
// with an image's name is refused at once instead of blocking the run or reading forever.
File open_file(const fs::path& file) {
  int fd = -1;
  try {
    const io::InputFile in(file, io::kNoLimit, "image");
    fd = ::dup(in.fd());
  } catch (const io::Error& e) {
    fail(file, std::string("cannot open: ") + e.what());
  }
  if (fd < 0) fail(file, std::string("cannot open: ") + std::strerror(errno));
  File f(::fdopen(fd, "rb"));
  if (!f) {
    const int err = errno;
    ::close(fd);
    fail(file, std::string("cannot open: ") + std::strerror(err));
  }
  return f;
}

std::vector<uint8_t> read_all(const fs::path& file) {
  File f = open_file(file);
  std::vector<uint8_t> bytes;
  std::error_code ec;
  if (const auto size = fs::file_size(file, ec); !ec) bytes.reserve(size);
  uint8_t chunk[1 << 16];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, f.get())) > 0) bytes.insert(bytes.end(), chunk, chunk + got);
  if (std::ferror(f.get())) fail(file, std::string("read error: ") + std::strerror(errno));
  return bytes;
}

Format detect(const fs::path& file, const uint8_t* head, size_t n) {
  if (n >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff) return Format::Jpeg;
  if (n >= 8 && std::memcmp(head, kPngSignature, 8) == 0) return Format::Png;
  if (n == 0) fail(file, "empty file");
  std::string bytes;
  char hex[4];
  for (size_t i = 0; i < std::min<size_t>(n, 8); ++i) {
    std::snprintf(hex, sizeof hex, " %02x", head[i]);
    bytes += hex;
  }
  fail(file, "not a JPEG or PNG file (it starts with bytes" + bytes + ")");
}

// Where the compressed bytes come from: a FILE (headers: read only as far as needed) or memory.
struct Input {
  std::FILE* file = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0, offset = 0;
  char message[JMSG_LENGTH_MAX > 256 ? JMSG_LENGTH_MAX : 256] = {};
};

std::string too_large(int64_t width, int64_t height) {
  return std::to_string(width) + "x" + std::to_string(height) + " pixels is more than the " +
         std::to_string(kMaxPixels) + " pixels an image may have (a corrupt header?)";
}

// ---- JPEG -------------------------------------------------------------------------------------------
// libjpeg's default error handler prints and calls exit(): ours formats the message and longjmps back
// to run_jpeg(), which returns it.

struct JpegErrors {
  jpeg_error_mgr pub;  // first member: libjpeg only sees this part
  std::jmp_buf jump;
  Input* input;
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  cinfo->err->format_message(cinfo, errors->input->message);
  std::longjmp(errors->jump, 1);
}

// The warnings that mean the pixel data is damaged. libjpeg decodes on with grey or garbled blocks;
// training on those silently is worse than stopping. Metadata quirks (JFIF revision, Adobe transform
// code, a bad ICC marker) leave the pixels intact and stay warnings.
bool damages_pixels(int code) {
  switch (code) {
    case JWRN_ARITH_BAD_CODE:
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_JPEG_EOF:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
      return true;
    default:
      return false;
  }
}

void jpeg_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  if (damages_pixels(cinfo->err->msg_code)) jpeg_fail(cinfo);
  ++cinfo->err->num_warnings;
}

struct JpegDecoder {
  jpeg_decompress_struct cinfo{};
  JpegErrors errors{};
  // Safe on a struct jpeg_create_decompress never saw (it frees nothing then).
  ~JpegDecoder() { jpeg_destroy_decompress(&cinfo); }
};

// Returns "" on success, else libjpeg's message. The only function that setjmps: between setjmp and
// any call that may longjmp it creates no object with a destructor (C++ forbids skipping one).
std::string run_jpeg(JpegDecoder& d, Input& input, ImageHeader& header, Image* image) {
  d.cinfo.err = jpeg_std_error(&d.errors.pub);
  d.errors.pub.error_exit = jpeg_fail;
  d.errors.pub.emit_message = jpeg_message;
  d.errors.input = &input;
  if (setjmp(d.errors.jump)) return input.message;
  jpeg_create_decompress(&d.cinfo);
  if (input.file)
    jpeg_stdio_src(&d.cinfo, input.file);
  else
    jpeg_mem_src(&d.cinfo, input.data, static_cast<unsigned long>(input.size));
  jpeg_read_header(&d.cinfo, TRUE);
  header.width = d.cinfo.image_width;
  header.height = d.cinfo.image_height;
  if (d.cinfo.jpeg_color_space == JCS_CMYK || d.cinfo.jpeg_color_space == JCS_YCCK)
    return "CMYK JPEGs are not supported; convert the file to RGB (e.g. `convert in.jpg -colorspace sRGB out.jpg`)";
  header.channels = d.cinfo.jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
  if (header.width * header.height > kMaxPixels) return too_large(header.width, header.height);
  if (!image) return {};

  // libjpeg's defaults (JDCT_ISLOW, fancy upsampling) are what PIL and torchvision decode with.
  d.cinfo.out_color_space = header.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&d.cinfo);
  if (d.cinfo.output_components != header.channels) return "unexpected number of decoded components";
  image->width = d.cinfo.output_width;
  image->height = d.cinfo.output_height;
  image->channels = header.channels;
  const size_t stride = static_cast<size_t>(image->width) * static_cast<size_t>(image->channels);
  image->pixels.resize(stride * static_cast<size_t>(image->height));
  while (d.cinfo.output_scanline < d.cinfo.output_height) {
    JSAMPROW row = image->pixels.data() + d.cinfo.output_scanline * stride;
    jpeg_read_scanlines(&d.cinfo, &row, 1);
  }
  jpeg_finish_decompress(&d.cinfo);
  return {};
}

// ---- PNG --------------------------------------------------------------------------------------------

void png_read_input(png_structp png, png_bytep out, size_t n) {
  auto* input = static_cast<Input*>(png_get_io_ptr(png));
  if (input->file) {
    if (std::fread(out, 1, n, input->file) == n) return;
    png_error(png, std::ferror(input->file) ? "read error" : "unexpected end of file (the PNG is truncated)");
  }
  if (input->size - input->offset < n) png_error(png, "unexpected end of file (the PNG is truncated)");
  std::memcpy(out, input->data + input->offset, n);
  input->offset += n;
}

[[noreturn]] void png_fail(png_structp png, png_const_charp message) {
  auto* input = static_cast<Input*>(png_get_error_ptr(png));
  std::snprintf(input->message, sizeof input->message, "%s", message);
  png_longjmp(png, 1);
}

// libpng warns about ancillary-chunk quirks (an sRGB profile, a bad tEXt chunk); damaged pixel data
// (a bad IDAT CRC, a broken zlib stream, missing data) is an error in libpng itself.
void png_warn(png_structp, png_const_charp) {}

struct PngDecoder {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<png_bytep> rows;  // lives outside run_png: nothing with a destructor is created after setjmp
  ~PngDecoder() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

std::string run_png(PngDecoder& d, Input& input, ImageHeader& header, Image* image) {
  if (setjmp(png_jmpbuf(d.png))) return input.message;
  png_set_read_fn(d.png, &input, png_read_input);
  png_read_info(d.png, d.info);
  png_uint_32 width = 0, height = 0;
  int depth = 0, color = 0;
  png_get_IHDR(d.png, d.info, &width, &height, &depth, &color, nullptr, nullptr, nullptr);
  header.width = width;
  header.height = height;
  header.channels = (color & PNG_COLOR_MASK_COLOR) ? 3 : 1;  // palette images are colour
  if (header.width * header.height > kMaxPixels) return too_large(header.width, header.height);
  if (!image) return {};

  if (depth == 16) png_set_scale_16(d.png);  // rounds, as PIL's and torchvision's 16-to-8-bit conversions
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(d.png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(d.png);
  if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(d.png, d.info, PNG_INFO_tRNS)) png_set_strip_alpha(d.png);
  png_set_interlace_handling(d.png);
  png_read_update_info(d.png, d.info);
  if (png_get_channels(d.png, d.info) != header.channels || png_get_bit_depth(d.png, d.info) != 8)
    return "unsupported PNG layout (colour type " + std::to_string(color) + ", bit depth " + std::to_string(depth) + ")";

  image->width = header.width;
  image->height = header.height;
  image->channels = header.channels;
  const size_t stride = static_cast<size_t>(image->width) * static_cast<size_t>(image->channels);
  image->pixels.resize(stride * static_cast<size_t>(image->height));
  d.rows.resize(static_cast<size_t>(image->height));
  for (size_t y = 0; y < d.rows.size(); ++y) d.rows[y] = image->pixels.data() + y * stride;
  png_read_image(d.png, d.rows.data());
  png_read_end(d.png, nullptr);  // reads up to IEND: a file cut after its pixel data is still truncated
  return {};
}

std::string run(Format format, Input& input, ImageHeader& header, Image* image) {
  if (format == Format::Jpeg) {
    JpegDecoder d;
    return run_jpeg(d, input, header, image);
  }
  PngDecoder d;
  d.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &input, png_fail, png_warn);
  if (d.png) d.info = png_create_info_struct(d.png);
  if (!d.png || !d.info) return "libpng could not create a reader (out of memory?)";
  return run_png(d, input, header, image);
}

}  // namespace

ImageHeader read_header(const fs::path& file) {
  File f = open_file(file);
  uint8_t head[8];
  const size_t n = std::fread(head, 1, sizeof head, f.get());
  ImageHeader header;
  header.format = detect(file, head, n);
  std::rewind(f.get());
  Input input;
  input.file = f.get();
  if (const std::string error = run(header.format, input, header, nullptr); !error.empty()) fail(file, error);
  return header;
}

Image decode(const fs::path& file) {
  const std::vector<uint8_t> bytes = read_all(file);
  ImageHeader header;
  header.format = detect(file, bytes.data(), bytes.size());
  Input input;
  input.data = bytes.data();
  input.size = bytes.size();
  Image image;
  if (const std::string error = run(header.format, input, header, &image); !error.empty()) fail(file, error);
  return image;
}

}  // namespace loom::image
