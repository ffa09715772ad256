// loom_npy (plugins/common/npy): .npy files written by Loom read by numpy and the other way round, header
// versions and alignment, clear errors for what Loom refuses, and the crash-safe file primitives.
#include "run_util.h"

#include "common/npy/file_io.h"
#include "common/npy/npy.h"
#include "common/npy/npy_tensor.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <limits>

namespace loom::test {
namespace {

// One tensor per supported dtype, with awkward values (NaN, inf, -0, extremes), plus 0-d and empty arrays.
std::map<std::string, at::Tensor> sample_tensors() {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const at::Tensor specials = torch::tensor({0.0, -0.0, 1.5, -2.25, inf, -inf, nan, 65504.0, 1e-3, 3.0}).view({2, 5});
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  return {
      {"bool", at::randint(0, 2, {3, 7}, gen).to(at::kBool)},
      {"uint8", at::randint(0, 256, {2, 1, 4, 4}, gen).to(at::kByte)},
      {"int8", at::randint(-128, 128, {5}, gen).to(at::kChar)},
      {"int16", at::randint(-32768, 32768, {3, 3}, gen).to(at::kShort)},
      {"int32", torch::tensor({std::numeric_limits<int32_t>::min(), -1, 0, 7, std::numeric_limits<int32_t>::max()}, at::kInt)},
      {"int64", torch::tensor({std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{1} << 40}, at::kLong)},
      {"float16", specials.to(at::kHalf)},
      {"float32", at::cat({specials.to(at::kFloat).flatten(), at::randn({90}, gen)}).view({10, 10})},
      {"float64", specials},
      {"scalar", torch::scalar_tensor(42.5, at::kDouble)},
      {"empty", at::empty({0, 3}, at::kFloat)},
  };
}

TEST(NpyFormat, LoomFilesReadByNumpyAndNumpyFilesReadByLoom) {
  TempDir dir;
  const auto tensors = sample_tensors();
  for (const auto& [name, t] : tensors) npy::save_tensor(dir / ("loom_" + name + ".npy"), t);

  const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR "/tests/python/npy_interop.py roundtrip " +
                               dir.path().string());
  ASSERT_EQ(py.exit_code, 0) << py.output;
  const auto seen = nlohmann::json::parse(py.output);
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    const auto& info = seen.at("loom_" + name + ".npy");
    EXPECT_EQ(info["dtype"].get<std::string>(), std::string(npy::descr(npy::element_type(t.scalar_type()))));
    EXPECT_EQ(info["shape"].get<std::vector<int64_t>>(), t.sizes().vec());
    EXPECT_EQ(info["version"], nlohmann::json::array({1, 0}));
    EXPECT_EQ(info["offset"].get<int64_t>() % 64, 0);
    // numpy's own format 1.0 file of the array numpy read is byte-identical to Loom's: same header
    // text, same padding, same data.
    EXPECT_EQ(read_file(dir / ("numpy_v1_" + name + ".npy")), read_file(dir / ("loom_" + name + ".npy")));
    for (const char* version : {"numpy_v1_", "numpy_v2_"}) {
      const fs::path file = dir / (version + name + ".npy");
      EXPECT_EQ(npy::read_header(file).major_version, version[7] - '0');
      expect_same_bytes(npy::load_tensor(file), t, file.string());
      expect_same_bytes(npy::load_tensor_mapped(file), t, file.string() + " (mapped)");
    }
  }
  // Format 3.0 (UTF-8 header) reads like the others.
  expect_same_bytes(npy::load_tensor(dir / "numpy_v3.npy"), at::arange(12, at::kFloat).view({3, 4}), "numpy_v3.npy");
}

TEST(NpyFormat, RefusesWhatItCannotReadWithTheFileAndTheFix) {
  TempDir dir;
  npy::save_tensor(dir / "loom_x.npy", at::zeros({1}));
  const CommandResult py = run(std::string(LOOM_TEST_PYTHON) + " " LOOM_TEST_SOURCE_DIR "/tests/python/npy_interop.py roundtrip " +
                               dir.path().string());
  ASSERT_EQ(py.exit_code, 0) << py.output;
  auto error_of = [&](const std::string& name) {
    try {
      npy::load_tensor(dir / name);
    } catch (const npy::Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string fortran = error_of("numpy_fortran.npy");
  EXPECT_NE(fortran.find((dir / "numpy_fortran.npy").string()), std::string::npos) << fortran;
  EXPECT_NE(fortran.find("': stored in Fortran (column-major) order"), std::string::npos) << fortran;
  EXPECT_NE(fortran.find("numpy.ascontiguousarray"), std::string::npos) << fortran;
  const std::string big = error_of("numpy_bigendian.npy");
  EXPECT_NE(big.find("dtype '>f4' is not supported (big-endian"), std::string::npos) << big;
  EXPECT_NE(error_of("numpy_complex.npy").find("dtype '<c8' is not supported"), std::string::npos);
  EXPECT_NE(error_of("numpy_uint16.npy").find("dtype '<u2' is not supported"), std::string::npos);
  EXPECT_NE(error_of("numpy_structured.npy").find("structured dtype"), std::string::npos);

  // Truncated data, truncated header, bad magic, unknown version: each named, nothing misread.
  const std::string good = read_file(dir / "numpy_v1_x.npy");
  write_file(dir / "short.npy", good.substr(0, good.size() - 1));
  const std::string short_error = error_of("short.npy");
  EXPECT_NE(short_error.find((dir / "short.npy").string() + "': truncated: 131 bytes, but its header (shape (1,), dtype <f4) needs 132"),
            std::string::npos)
      << short_error;
  write_file(dir / "short_header.npy", good.substr(0, 40));
  EXPECT_NE(error_of("short_header.npy").find("': truncated: the header says it is 118 bytes"), std::string::npos)
      << error_of("short_header.npy");
  write_file(dir / "magic.npy", "PK\x03\x04 this is a zip file");
  EXPECT_NE(error_of("magic.npy").find("': not a .npy file"), std::string::npos);
  std::string v9 = good;
  v9[6] = 9;
  write_file(dir / "v9.npy", v9);
  EXPECT_NE(error_of("v9.npy").find("': .npy format version 9.0; Loom reads 1.0, 2.0 and 3.0"), std::string::npos);
  EXPECT_NE(error_of("missing.npy").find("': cannot be opened for reading"), std::string::npos);

  // Saving: dtypes .npy cannot hold are refused by name, before anything is written.
  EXPECT_THROW(npy::save_tensor(dir / "bf16.npy", at::zeros({2}, at::kBFloat16)), npy::Error);
  EXPECT_FALSE(fs::exists(dir / "bf16.npy"));
}

TEST(NpyFormat, WriterPicksTheSmallestVersionAndAlignsTheData) {
  const std::string v1 = npy::format_header(npy::ElementType::Float32, {70000, 1, 28, 28});
  EXPECT_EQ(v1.size() % 64, 0u);
  EXPECT_EQ(v1[6], 1);
  EXPECT_EQ(v1.back(), '\n');
  const npy::Header h1 = npy::parse_header(v1, "v1");
  EXPECT_EQ(h1.shape, (std::vector<int64_t>{70000, 1, 28, 28}));
  EXPECT_EQ(h1.data_offset, v1.size());
  EXPECT_EQ(h1.data_bytes(), 70000u * 784u * 4u);

  // A header longer than 65535 bytes (format 1.0's uint16 length) needs format 2.0.
  const std::vector<int64_t> many(30000, 1);
  const std::string v2 = npy::format_header(npy::ElementType::UInt8, many);
  EXPECT_GT(v2.size(), 65535u);
  EXPECT_EQ(v2[6], 2);
  EXPECT_EQ(v2.size() % 64, 0u);
  const npy::Header h2 = npy::parse_header(v2, "v2");
  EXPECT_EQ(h2.major_version, 2);
  EXPECT_EQ(h2.shape, many);
  EXPECT_EQ(h2.data_offset, v2.size());
}

TEST(NpyFormat, AtomicWritesLeaveTheOldFileOrTheNewOneNeverHalf) {
  TempDir dir;
  const fs::path target = dir / "f.bin";
  io::write_file_atomically(target, "old");
  {
    npy::AtomicFile unfinished(target);
    unfinished.write("new but never committed", 23);
  }  // dropped without commit(): e.g. an exception mid-write
  EXPECT_EQ(read_file(target), "old");
  EXPECT_EQ(count_entries(dir.path()), 1u) << "the temporary file must be removed";
  io::write_file_atomically(target, "new");
  EXPECT_EQ(read_file(target), "new");
  EXPECT_EQ(count_entries(dir.path()), 1u);
}

TEST(NpyFormat, MappedTensorKeepsItsFileAlive) {
  TempDir dir;
  const at::Tensor original = at::arange(1000, at::kFloat).view({10, 100});
  npy::save_tensor(dir / "a.npy", original);
  at::Tensor rows;
  {
    const at::Tensor mapped = npy::load_tensor_mapped(dir / "a.npy");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(mapped.data_ptr()) % 64, 0u) << "data is 64-byte aligned in the mapping";
    rows = mapped.narrow(0, 3, 2);  // a view: holds the mapping after `mapped` is gone
  }
  fs::remove(dir / "a.npy");  // unlinked: the mapping still reads the old inode
  EXPECT_TRUE(torch::equal(rows, original.narrow(0, 3, 2)));
}

TEST(NpyFormat, FileLockIsExclusiveAcrossDescriptors) {
  TempDir dir;
  const fs::path file = dir / "x.lock";
  {
    npy::FileLock first(file);
    ASSERT_TRUE(first.held());
    npy::FileLock second(file, /*wait=*/false);
    EXPECT_FALSE(second.held()) << "flock must exclude a second open file description, even in one process";
  }
  npy::FileLock third(file, /*wait=*/false);
  EXPECT_TRUE(third.held());
}

}  // namespace
}  // namespace loom::test
