#include "cache/common/store_format.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <stdexcept>

namespace loom::caching {
namespace {

// Significand bits of a floating dtype, value bits of an integral one: a cast is exact when the target
// holds at least the source's bits (and, for floats, the range, which every case below has).
int exact_bits(c10::ScalarType t) {
  switch (t) {
    case at::kBool: return 1;
    case at::kByte: return 8;
    case at::kChar: return 8;  // 7 bits + sign
    case at::kShort: return 16;
    case at::kInt: return 32;
    case at::kLong: return 64;
    case at::kHalf: return 11;
    case at::kBFloat16: return 8;
    case at::kFloat: return 24;
    case at::kDouble: return 53;
    default: return 0;
  }
}

bool cast_is_exact(c10::ScalarType from, c10::ScalarType to) {
  if (from == to) return true;
  if (!at::isFloatingType(to)) return false;  // only float store dtypes are offered besides uint8 pixels
  if (at::isFloatingType(from)) {
    // float16 -> bfloat16 loses precision, bfloat16 -> float16 loses range; wider IEEE types hold both.
    if ((from == at::kHalf && to == at::kBFloat16) || (from == at::kBFloat16 && to == at::kHalf)) return false;
    return exact_bits(to) >= exact_bits(from);
  }
  return exact_bits(to) >= exact_bits(from);
}

// Element-wise bit equality (0.0 and -0.0 differ; "equal" must mean the same bytes).
at::Tensor same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (!at::isFloatingType(a.scalar_type())) return a.eq(b);
  const c10::ScalarType bits = c10::elementSize(a.scalar_type()) == 2   ? at::kShort
                               : c10::elementSize(a.scalar_type()) == 4 ? at::kInt
                                                                        : at::kLong;
  return a.view(bits).eq(b.view(bits));
}

}  // namespace

ParamSpec store_dtype_param() {
  return ParamSpec::choice("store_dtype", "auto", {"auto", "float32", "float16", "uint8"})
      .doc("auto: the dataset's dtype (lossless); float32/float16: cast (float16 is lossy for float32 data: "
           "cached samples differ by rounding); uint8: the dataset's pixels (needs pixel_scale/shift; "
           "bit-identical, 4x smaller than float32)");
}

std::string dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case at::kBool: return "bool";
    case at::kByte: return "uint8";
    case at::kChar: return "int8";
    case at::kShort: return "int16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    default: return c10::toString(dtype);
  }
}

uint64_t stored_bytes(int64_t count, const std::vector<int64_t>& shape, c10::ScalarType dtype) {
  uint64_t total = static_cast<uint64_t>(count);
  bool overflow = false;
  for (int64_t d : shape) overflow |= __builtin_mul_overflow(total, static_cast<uint64_t>(d), &total);
  overflow |= __builtin_mul_overflow(total, static_cast<uint64_t>(c10::elementSize(dtype)), &total);
  if (overflow)
    throw std::runtime_error("cache: " + std::to_string(count) + " samples of shape " + shape_text(shape) +
                             " overflow a 64-bit byte count");
  return total;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

StoreFormat::StoreFormat(const std::string& store_dtype, const SampleSpec& spec, std::string who)
    : spec_(spec), who_(std::move(who)) {
  if (store_dtype == "auto") {
    store_ = spec.dtype;
  } else if (store_dtype == "float32") {
    store_ = at::kFloat;
  } else if (store_dtype == "float16") {
    store_ = at::kHalf;
  } else if (store_dtype == "uint8") {
    if (spec.pixel_scale.empty())
      throw std::invalid_argument(
          who_ + ": store_dtype = \"uint8\" needs a dataset that declares its pixel affine (SampleSpec "
                 "pixel_scale/pixel_shift, e.g. fashion-mnist); this dataset does not, so its samples cannot be "
                 "stored as uint8 pixels exactly. Use store_dtype = \"auto\" (lossless) or \"float16\" (lossy)");
    if (spec.shape.empty() || static_cast<int64_t>(spec.pixel_scale.size()) != spec.shape[0] ||
        spec.pixel_shift.size() != spec.pixel_scale.size())
      throw std::invalid_argument(who_ + ": the dataset declares " + std::to_string(spec.pixel_scale.size()) +
                                  " pixel_scale and " + std::to_string(spec.pixel_shift.size()) +
                                  " pixel_shift entries for samples of shape " + shape_text(spec.shape) +
                                  "; store_dtype = \"uint8\" needs one of each per channel (dim 0)");
    for (double s : spec.pixel_scale)
      if (s == 0.0) throw std::invalid_argument(who_ + ": the dataset declares a pixel_scale of 0; uint8 storage cannot invert it");
    store_ = at::kByte;
    pixels_ = true;
    if (at::isFloatingType(spec.dtype)) {  // the lookup table of from_store(): from_pixels() of 0..255
      const int64_t channels = spec.shape[0];
      lut_ = from_pixels(at::arange(256, at::kByte).view({1, 1, 256}).expand({1, channels, 256}).contiguous(), spec)
                 .view({channels, 256})
                 .contiguous();
    }
  } else {
    throw std::invalid_argument(who_ + ": unknown store_dtype '" + store_dtype + "' (auto, float32, float16, uint8)");
  }
  lossy_ = !pixels_ && !cast_is_exact(spec.dtype, store_);
}

void StoreFormat::warn_if_lossy(Logger& logger) const {
  if (!lossy_) return;
  logger.warn(who_ + ": store_dtype = " + store_name() + " is lossy for this dataset's " + dtype_name(spec_.dtype) +
              " samples: cached samples differ from uncached ones by rounding (use \"auto\" for exact samples" +
              std::string(spec_.pixel_scale.empty() ? "" : ", or \"uint8\": exact and 4x smaller than float32") + ")");
}

at::Tensor StoreFormat::pixels_of(const at::Tensor& samples, int64_t first_index) const {
  const int64_t channels = static_cast<int64_t>(spec_.pixel_scale.size());
  std::vector<int64_t> per_channel(static_cast<size_t>(samples.dim()), 1);
  per_channel[1] = channels;
  const auto options = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor scale = at::tensor(spec_.pixel_scale, options).view(per_channel);
  const at::Tensor shift = at::tensor(spec_.pixel_shift, options).view(per_channel);
  // Invert in float64: the dataset's float32 affine is exact to well under half a pixel step.
  const at::Tensor real = ((samples.to(at::kDouble) - shift) / scale).round();
  const at::Tensor in_range = (real >= 0).logical_and(real <= 255);  // NaN compares false: caught here
  const at::Tensor pixels = real.clamp(0, 255).to(at::kByte);
  const at::Tensor exact = same_bits(from_pixels(pixels, spec_), samples).logical_and(in_range);
  const at::Tensor per_sample = exact.flatten(1).all(1);
  if (!per_sample.all().item<bool>()) {
    const int64_t bad = per_sample.logical_not().nonzero().flatten()[0].item<int64_t>();
    throw std::runtime_error(
        who_ + ": store_dtype = \"uint8\": sample " + std::to_string(first_index + bad) +
        " is not from_pixels() of uint8 pixels under the dataset's declared pixel_scale/pixel_shift (the dataset's "
        "load() is not the affine it declares), so storing it as uint8 would change it. Use store_dtype = \"auto\", "
        "and report the mismatch to the dataset plugin's author");
  }
  return pixels;
}

at::Tensor StoreFormat::to_store(const at::Tensor& samples, int64_t first_index) const {
  if (pixels_) return pixels_of(samples, first_index);
  return samples.to(store_).contiguous();
}

at::Tensor StoreFormat::from_store(const at::Tensor& stored) const {
  if (pixels_) {
    if (!lut_.defined() || stored.dim() < 2 || stored.size(1) != lut_.size(0)) return from_pixels(stored, spec_);
    at::Tensor out = at::empty(stored.sizes(), stored.options().dtype(spec_.dtype));
    const int64_t planes = stored.size(0) * stored.size(1), channels = stored.size(1);
    const int64_t plane = planes == 0 ? 0 : stored.numel() / planes;
    const uint8_t* in = stored.contiguous().const_data_ptr<uint8_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, spec_.dtype, "from_store_lut", [&] {
      const scalar_t* table = lut_.const_data_ptr<scalar_t>();
      scalar_t* o = out.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, planes, std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(plane, 1)),
                       [&](int64_t begin, int64_t end) {
                         for (int64_t p = begin; p < end; ++p) {
                           const scalar_t* t = table + (p % channels) * 256;
                           const uint8_t* src = in + p * plane;
                           scalar_t* dst = o + p * plane;
                           for (int64_t i = 0; i < plane; ++i) dst[i] = t[src[i]];
                         }
                       });
    });
    return out;
  }
  // index_select already made a new tensor; only a dtype change needs another.
  return stored.scalar_type() == spec_.dtype ? stored : stored.to(spec_.dtype);
}

}  // namespace loom::caching
