#include "common/npy/npy.h"

#include "common/npy/file_io.h"

#include <loom/io.h>

#include <array>
#include <cctype>
#include <cstring>
#include <limits>
#include <optional>

namespace loom::npy {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr size_t kPrefixV1 = 10;  // magic(6) + version(2) + uint16 length
constexpr size_t kPrefixV2 = 12;  // magic(6) + version(2) + uint32 length
constexpr size_t kAlign = 64;

struct TypeRow {
  ElementType type;
  std::string_view descr;
  size_t size;
};
constexpr std::array<TypeRow, 9> kTypes = {{
    {ElementType::Bool, "|b1", 1},
    {ElementType::UInt8, "|u1", 1},
    {ElementType::Int8, "|i1", 1},
    {ElementType::Int16, "<i2", 2},
    {ElementType::Int32, "<i4", 4},
    {ElementType::Int64, "<i8", 8},
    {ElementType::Float16, "<f2", 2},
    {ElementType::Float32, "<f4", 4},
    {ElementType::Float64, "<f8", 8},
}};

const TypeRow& row(ElementType type) {
  for (const TypeRow& r : kTypes)
    if (r.type == type) return r;
  throw std::logic_error("npy: unknown ElementType");
}

std::string quoted(const fs::path& file) { return "'" + file.string() + "'"; }

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw Error("npy file " + quoted(file) + ": " + what);
}

uint64_t checked_mul(uint64_t a, uint64_t b, const fs::path& file) {
  uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) fail(file, "the shape's size overflows 64 bits (corrupt header?)");
  return out;
}

// A minimal parser for the Python literal numpy writes: a dict of 'descr' (a string; a list for
// structured dtypes, which we refuse), 'fortran_order' (True/False) and 'shape' (a tuple of ints).
class DictParser {
 public:
  DictParser(std::string_view text, const fs::path& file) : s_(text), file_(file) {}

  Header parse() {
    Header h;
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() == '[')
          fail(file_, "a structured dtype (descr is a list); Loom reads plain numeric arrays only");
        const std::string d = string_literal();
        const auto type = parse_descr(d);
        if (!type) {
          const bool big = !d.empty() && d[0] == '>' && d.size() > 2 && d.substr(2) != "1";
          fail(file_, "dtype '" + d + "' is not supported" +
                          (big ? std::string(" (big-endian; convert with arr.astype(arr.dtype.newbyteorder('<')))")
                               : std::string("")) +
                          "; supported: bool (|b1), uint8 (|u1), int8 (|i1), int16 (<i2), int32 (<i4), "
                          "int64 (<i8), float16 (<f2), float32 (<f4), float64 (<f8)");
        }
        h.type = *type;
        have_descr = true;
      } else if (key == "fortran_order") {
        if (boolean_literal())
          fail(file_, "stored in Fortran (column-major) order; Loom reads C-order arrays only "
                      "(save it with numpy.save(f, numpy.ascontiguousarray(arr)))");
        have_order = true;
      } else if (key == "shape") {
        h.shape = tuple_literal();
        have_shape = true;
      } else {
        fail(file_, "unexpected header key '" + key + "' (a .npy header has descr, fortran_order and shape)");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != '}') fail(file_, "malformed header: expected ',' or '}' at byte " + std::to_string(pos_));
    }
    expect('}');
    if (!have_descr || !have_order || !have_shape)
      fail(file_, "header lacks " + std::string(!have_descr ? "'descr'" : !have_order ? "'fortran_order'" : "'shape'"));
    return h;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c)
      fail(file_, std::string("malformed header: expected '") + c + "' at byte " + std::to_string(pos_) + " of \"" +
                      std::string(s_) + "\"");
    ++pos_;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail(file_, "malformed header: expected a quoted string at byte " + std::to_string(pos_));
    const size_t end = s_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail(file_, "malformed header: unterminated string");
    std::string out(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }
  bool boolean_literal() {
    skip_space();
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail(file_, "malformed header: fortran_order is neither True nor False");
  }
  std::vector<int64_t> tuple_literal() {
    expect('(');
    std::vector<int64_t> dims;
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek())))
        fail(file_, "malformed header: the shape holds a non-integer at byte " + std::to_string(pos_));
      uint64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        v = checked_mul(v, 10, file_) + static_cast<uint64_t>(peek() - '0');
        if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail(file_, "a shape dimension overflows int64");
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 longs, in files written long ago
      dims.push_back(static_cast<int64_t>(v));
      skip_space();
      if (peek() == ',') ++pos_;
      else if (peek() != ')') fail(file_, "malformed header: expected ',' or ')' in the shape");
    }
    ++pos_;
    return dims;
  }

  std::string_view s_;
  const fs::path& file_;
  size_t pos_ = 0;
};

uint32_t read_le(const char* p, size_t bytes) {
  uint32_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

}  // namespace

size_t element_size(ElementType type) { return row(type).size; }

std::string_view descr(ElementType type) { return row(type).descr; }

std::optional<ElementType> parse_descr(std::string_view d) {
  if (d.size() != 3) return std::nullopt;
  const char order = d[0];
  const std::string_view code = d.substr(1);
  for (const TypeRow& r : kTypes) {
    if (code != r.descr.substr(1)) continue;
    // One-byte types have no byte order ('|'); numpy also accepts '<', '>' and '=' for them.
    if (r.size == 1) return order == '|' || order == '<' || order == '>' || order == '=' ? std::optional(r.type) : std::nullopt;
    if (order == '<' || order == '=') return r.type;  // '=' is native: little-endian on every Loom target
    return std::nullopt;
  }
  return std::nullopt;
}

uint64_t Header::element_count() const {
  uint64_t n = 1;
  for (int64_t d : shape) {
    uint64_t out = 0;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &out)) throw Error("npy: shape size overflows 64 bits");
    n = out;
  }
  return n;
}

uint64_t Header::data_bytes() const {
  uint64_t out = 0;
  if (__builtin_mul_overflow(element_count(), static_cast<uint64_t>(element_size(type)), &out))
    throw Error("npy: array size overflows 64 bits");
  return out;
}

Header parse_header(std::string_view prefix, const fs::path& file) {
  if (prefix.size() < kMagic.size() || prefix.substr(0, kMagic.size()) != kMagic)
    fail(file, "not a .npy file (it does not start with the magic \"\\x93NUMPY\")");
  if (prefix.size() < kPrefixV1) fail(file, "truncated: " + std::to_string(prefix.size()) + " bytes, shorter than the .npy prefix");
  const int major = static_cast<unsigned char>(prefix[6]);
  const int minor = static_cast<unsigned char>(prefix[7]);
  if (major < 1 || major > 3 || minor != 0)
    fail(file, ".npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                   "; Loom reads 1.0, 2.0 and 3.0");
  const size_t prefix_size = major == 1 ? kPrefixV1 : kPrefixV2;
  if (prefix.size() < prefix_size) fail(file, "truncated inside the .npy prefix");
  const uint64_t header_len = read_le(prefix.data() + 8, major == 1 ? 2 : 4);
  if (prefix.size() < prefix_size + header_len)
    fail(file, "truncated: the header says it is " + std::to_string(header_len) + " bytes but the file holds only " +
                   std::to_string(prefix.size() - prefix_size) + " after the prefix");
  const std::string_view dict = prefix.substr(prefix_size, header_len);
  if (major < 3)
    for (char c : dict)
      if (static_cast<unsigned char>(c) >= 0x80) fail(file, "non-ASCII bytes in a format " + std::to_string(major) + ".0 header");
  Header h = DictParser(dict, file).parse();
  h.major_version = major;
  h.data_offset = prefix_size + header_len;
  uint64_t elements = 1;
  for (int64_t d : h.shape) elements = checked_mul(elements, static_cast<uint64_t>(d), file);
  (void)checked_mul(elements, element_size(h.type), file);  // data_bytes() is safe from here on
  return h;
}

Header read_header(const fs::path& file) {
  // A regular file, checked on the opened descriptor before the first read: a FIFO or a device named like a
  // cache file is refused at once instead of blocking or reading forever.
  std::optional<io::InputFile> in;
  try {
    in.emplace(file, io::kNoLimit, "npy file");
  } catch (const io::Error& e) {
    fail(file, "cannot be opened for reading (" + std::string(e.what()) + ")");
  }
  const uint64_t file_size = in->size();
  // Read the prefix, then as much header as it announces (up to 4 GiB for 2.0; real headers are tiny).
  std::string bytes(std::min<uint64_t>(file_size, kPrefixV2), '\0');
  bytes.resize(in->read(bytes.data(), bytes.size()));
  if (bytes.size() >= kPrefixV1 && bytes.substr(0, kMagic.size()) == kMagic) {
    const int major = static_cast<unsigned char>(bytes[6]);
    const size_t prefix_size = major == 1 ? kPrefixV1 : kPrefixV2;
    if (bytes.size() >= prefix_size) {
      const uint64_t header_len = read_le(bytes.data() + 8, major == 1 ? 2 : 4);
      const uint64_t want = std::min<uint64_t>(file_size, prefix_size + header_len);
      const size_t have = bytes.size();
      bytes.resize(want);
      bytes.resize(have + in->read(bytes.data() + have, want - have));
    }
  }
  const Header h = parse_header(bytes, file);
  const uint64_t need = h.data_offset + h.data_bytes();
  if (file_size < need)
    fail(file, "truncated: " + std::to_string(file_size) + " bytes, but its header (shape " + shape_string(h.shape) +
                   ", dtype " + std::string(descr(h.type)) + ") needs " + std::to_string(need));
  return h;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::string format_header(ElementType type, const std::vector<int64_t>& shape) {
  for (int64_t d : shape)
    if (d < 0) throw Error("npy: negative dimension in shape " + shape_string(shape));
  std::string dict = "{'descr': '" + std::string(descr(type)) + "', 'fortran_order': False, 'shape': " +
                     shape_string(shape) + ", }";
  bool ascii = true;
  for (char c : dict) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  // Padding: spaces, then '\n', so that prefix + dict is a multiple of kAlign.
  auto padded_len = [&](size_t prefix) { return (prefix + dict.size() + 1 + kAlign - 1) / kAlign * kAlign - prefix; };
  int major = !ascii ? 3 : padded_len(kPrefixV1) <= 0xFFFF ? 1 : 2;
  const size_t prefix = major == 1 ? kPrefixV1 : kPrefixV2;
  const size_t header_len = padded_len(prefix);
  if (header_len > 0xFFFFFFFFull) throw Error("npy: header too long for the .npy format");
  dict.append(header_len - dict.size() - 1, ' ');
  dict.push_back('\n');

  std::string out(kMagic);
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  for (size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) out.push_back(static_cast<char>((header_len >> (8 * i)) & 0xFF));
  return out + dict;
}

void write_array(const fs::path& file, ElementType type, const std::vector<int64_t>& shape, const void* data) {
  const std::string header = format_header(type, shape);
  Header h;
  h.type = type;
  h.shape = shape;
  AtomicFile out(file);
  out.write(header.data(), header.size());
  out.write(data, h.data_bytes());
  out.commit();
}

}  // namespace loom::npy
