#include "common/npy/npy_tensor.h"

#include <ATen/ATen.h>

#include <cstring>
#include <string>

namespace loom::npy {
namespace {

namespace fs = std::filesystem;

std::vector<int64_t> sizes_of(const at::Tensor& t) { return t.sizes().vec(); }

}  // namespace

ElementType element_type(c10::ScalarType dtype) {
  switch (dtype) {
    case at::kBool: return ElementType::Bool;
    case at::kByte: return ElementType::UInt8;
    case at::kChar: return ElementType::Int8;
    case at::kShort: return ElementType::Int16;
    case at::kInt: return ElementType::Int32;
    case at::kLong: return ElementType::Int64;
    case at::kHalf: return ElementType::Float16;
    case at::kFloat: return ElementType::Float32;
    case at::kDouble: return ElementType::Float64;
    default:
      throw Error(std::string("npy: tensor dtype ") + c10::toString(dtype) +
                  " has no .npy equivalent Loom writes; convert it first (bool, uint8, int8, int16, int32, int64, "
                  "float16, float32 or float64)");
  }
}

c10::ScalarType scalar_type(ElementType type) {
  switch (type) {
    case ElementType::Bool: return at::kBool;
    case ElementType::UInt8: return at::kByte;
    case ElementType::Int8: return at::kChar;
    case ElementType::Int16: return at::kShort;
    case ElementType::Int32: return at::kInt;
    case ElementType::Int64: return at::kLong;
    case ElementType::Float16: return at::kHalf;
    case ElementType::Float32: return at::kFloat;
    case ElementType::Float64: return at::kDouble;
  }
  throw std::logic_error("npy: unknown ElementType");
}

void save_tensor(const fs::path& file, const at::Tensor& tensor) {
  if (!tensor.defined()) throw Error("npy: cannot save an undefined tensor to '" + file.string() + "'");
  if (!tensor.device().is_cpu())
    throw Error("npy: cannot save a tensor on " + tensor.device().str() + " to '" + file.string() +
                "'; move it to the CPU first (tensor.cpu())");
  const ElementType type = element_type(tensor.scalar_type());
  const at::Tensor contiguous = tensor.contiguous();
  write_array(file, type, sizes_of(contiguous), contiguous.data_ptr());
}

at::Tensor load_tensor(const fs::path& file) {
  const Header h = read_header(file);
  std::vector<int64_t> shape = h.shape;
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(scalar_type(h.type)));
  MappedFile mapping(file);  // read via the page cache, without a second buffer
  if (h.data_bytes() > 0) std::memcpy(out.data_ptr(), mapping.data() + h.data_offset, h.data_bytes());
  return out;
}

at::Tensor mapped_tensor(std::shared_ptr<const MappedFile> mapping, const Header& header) {
  if (header.data_offset + header.data_bytes() > mapping->size())
    throw Error("npy file '" + mapping->path().string() + "' is truncated: the mapping holds " +
                std::to_string(mapping->size()) + " bytes, the header needs " +
                std::to_string(header.data_offset + header.data_bytes()));
  // from_blob never writes; the const_cast only satisfies its signature (the tensor is documented
  // read-only, and the pages are PROT_READ, so a write faults rather than corrupting the file).
  void* data = const_cast<std::byte*>(mapping->data() + header.data_offset);
  if (header.data_bytes() == 0) return at::empty(header.shape, at::TensorOptions().dtype(scalar_type(header.type)));
  return at::from_blob(
      data, header.shape, [keep = std::move(mapping)](void*) mutable { keep.reset(); },
      at::TensorOptions().dtype(scalar_type(header.type)));
}

at::Tensor load_tensor_mapped(const fs::path& file) {
  const Header h = read_header(file);
  return mapped_tensor(std::make_shared<const MappedFile>(file), h);
}

}  // namespace loom::npy
