// LibTorch tensors as .npy files: save atomically, load into memory, or map a file and get a tensor over
// its bytes (no copy; the tensor keeps the mapping alive).
//
//   loom::npy::save_tensor("labels.npy", labels);                 // numpy.load() reads it back
//   at::Tensor labels = loom::npy::load_tensor("labels.npy");
//   at::Tensor data = loom::npy::load_tensor_mapped("data.npy");  // read-only view over the page cache
#pragma once

#include "common/npy/file_io.h"
#include "common/npy/npy.h"

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <memory>

namespace loom::npy {

/// The .npy element type of a tensor dtype. Throws npy::Error for dtypes numpy cannot represent
/// (bfloat16, complex, quantized, ...) naming the dtype.
ElementType element_type(c10::ScalarType dtype);
/// The tensor dtype of a .npy element type.
c10::ScalarType scalar_type(ElementType type);

/// Writes a CPU tensor of a supported dtype (bool, uint8, int8, int16, int32, int64, float16, float32,
/// float64) atomically as a C-order .npy file. A non-contiguous tensor is written as its contiguous copy.
/// Throws npy::Error (unsupported dtype, a tensor not on the CPU, an I/O failure) naming the file.
void save_tensor(const std::filesystem::path& file, const at::Tensor& tensor);

/// Reads a whole .npy file into a new tensor (owning its memory). Throws npy::Error as read_header().
at::Tensor load_tensor(const std::filesystem::path& file);

/// A tensor over the memory-mapped data of a .npy file: no copy, pages read on first touch. The tensor
/// (and every view of it) holds the mapping alive. It is READ-ONLY: writing into it faults; take
/// index_select()/clone() copies instead.
at::Tensor load_tensor_mapped(const std::filesystem::path& file);

/// The same over a mapping and header the caller already has (e.g. after validating the file).
at::Tensor mapped_tensor(std::shared_ptr<const MappedFile> mapping, const Header& header);

}  // namespace loom::npy
