// The numpy `.npy` file format (format 1.0, 2.0 and 3.0), without LibTorch: header parsing and writing.
//
// A file is the magic "\x93NUMPY", a major/minor version, the header length (uint16 for 1.0, uint32 for
// 2.0 and 3.0, little-endian), then a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (70000, 1, 28, 28), }
// padded with spaces and ended by '\n', then the raw array bytes. 3.0 only differs in allowing UTF-8 in
// the header. Loom reads and writes little-endian, C-order arrays of the plain numeric dtypes below; every
// other file is refused with an npy::Error naming the file and what it holds, never misread.
//
// The writer picks 1.0 when the header fits in 65535 bytes, else 2.0 (3.0 only for a non-ASCII header),
// and pads the header so the data starts at a multiple of 64 bytes (as numpy does), which keeps a
// memory-mapped array aligned for vectorised reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace loom::npy {

/// Any problem with a .npy file. The message names the file, what was expected and what was found.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The element types Loom reads and writes (little-endian). numpy's descr is in parentheses.
enum class ElementType { Bool, UInt8, Int8, Int16, Int32, Int64, Float16, Float32, Float64 };

/// Bytes per element.
size_t element_size(ElementType type);
/// numpy's descr string: "|b1", "|u1", "|i1", "<i2", "<i4", "<i8", "<f2", "<f4", "<f8".
std::string_view descr(ElementType type);
/// The element type of a descr string; std::nullopt for anything Loom does not support (big-endian,
/// unsigned wider than a byte, complex, strings, structured dtypes, ...).
std::optional<ElementType> parse_descr(std::string_view descr);

/// A parsed header.
struct Header {
  ElementType type = ElementType::Float32;
  std::vector<int64_t> shape;   ///< empty for a 0-d array
  int major_version = 1;        ///< 1, 2 or 3 (what the file says; the writer picks for you)
  uint64_t data_offset = 0;     ///< bytes from the start of the file to the first element

  uint64_t element_count() const;  ///< product of shape (1 for a 0-d array)
  uint64_t data_bytes() const;     ///< element_count() * element_size(type)
};

/// Parses a header from the first bytes of a file (`prefix` may hold more than the header). `file` only
/// names the file in error messages. Throws npy::Error for bad magic, an unknown version, a truncated or
/// malformed header, Fortran order, a big-endian or unsupported dtype, or a shape whose size overflows.
Header parse_header(std::string_view prefix, const std::filesystem::path& file);

/// Reads and parses the header of `file` and checks that the file holds all the data the header
/// promises (a shorter file is reported as truncated).
Header read_header(const std::filesystem::path& file);

/// The complete header (magic, version, length, padded dict) for a C-order array; its size() is the
/// data offset, a multiple of 64.
std::string format_header(ElementType type, const std::vector<int64_t>& shape);

/// Writes a whole C-order array atomically (temp file, fsync, rename, fsync of the directory).
/// `data` holds element_count * element_size bytes, little-endian.
void write_array(const std::filesystem::path& file, ElementType type, const std::vector<int64_t>& shape,
                 const void* data);

/// "(70000, 1, 28, 28)", as in the header: for messages.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace loom::npy
