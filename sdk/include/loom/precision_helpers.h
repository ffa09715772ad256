// Helpers for precision (and any other) plugins, installed with the SDK so third-party plugins use the
// same, tested pieces as the built-ins:
//
//   AutocastScope        RAII twin of Python's torch.autocast(device_type, dtype) __enter__/__exit__
//   require_autocast()   a clear error when LibTorch has no autocast for a device type
//   clip_gradients()     total-norm clipping over every parameter the optimizer updates
//   optimizer_parameters()  those parameters, in group order
//   to_channels_last()   converts a module's 4-D parameters to channels_last, in place
//   memory_format_param(), apply_memory_format()   the built-ins' [precision] memory_format, for any
//                        precision plugin: declare the parameter, return apply_memory_format() from prepare()
//
// (SplitIndices and from_pixels(), for datasets, are in <loom/dataset.h>.)
#pragma once

#include <loom/params.h>
#include <loom/precision.h>

#include <ATen/autocast_mode.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace loom {

/// Every parameter the optimizer updates, in group order.
inline std::vector<at::Tensor> optimizer_parameters(torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> parameters;
  for (const auto& group : optimizer.param_groups())
    parameters.insert(parameters.end(), group.params().begin(), group.params().end());
  return parameters;
}

/// Clips the total L2 norm of the gradients to `max_norm` and returns the norm before clipping
/// (a device→host sync); returns -1 and does nothing when max_norm <= 0. Call it on unscaled gradients.
inline double clip_gradients(torch::optim::Optimizer& optimizer, double max_norm) {
  if (max_norm <= 0.0) return -1.0;
  return torch::nn::utils::clip_grad_norm_(optimizer_parameters(optimizer), max_norm);
}

/// Python's `module.to(memory_format=torch.channels_last)`: every 4-D parameter (and its gradient, if
/// any) is re-laid out in place, keeping its identity, so call it before the optimizer is built.
/// Like Python's, it gives channels_last *strides* even to a weight whose layout is ambiguous (one input
/// channel, e.g. a first convolution over grey images: `contiguous(ChannelsLast)` would keep its
/// contiguous strides, and oneDNN/cuDNN would then run that convolution and everything after it until
/// the next channels_last weight in the contiguous layout).
inline void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  auto relaid = [](const at::Tensor& t) {
    if (t.suggest_memory_format() == at::MemoryFormat::ChannelsLast) return t;
    return at::empty_like(t, t.options().memory_format(at::MemoryFormat::ChannelsLast)).copy_(t);
  };
  for (at::Tensor& p : module.parameters(/*recurse=*/true)) {
    if (p.dim() != 4) continue;
    p.set_data(relaid(p));
    if (p.grad().defined()) p.mutable_grad() = relaid(p.grad());
  }
}

/// Throws when LibTorch has no autocast for the device type (Python's torch.autocast raises there too).
inline void require_autocast(c10::DeviceType type, const std::string& who) {
  if (!at::autocast::is_autocast_available(type))
    throw std::invalid_argument(who + ": LibTorch has no autocast for device type '" + c10::DeviceTypeName(type, true) +
                                "'");
}

/// `with torch.autocast(device_type, dtype=dtype, cache_enabled=cache_enabled):` in C++, mirroring
/// torch/amp/autocast_mode.py exactly:
///   __enter__: save (cache flag, enabled, dtype); set enabled and dtype; increment nesting; set cache flag
///   __exit__:  if decrement_nesting() == 0: clear the cast cache; restore enabled, dtype, cache flag
/// The destructor runs on every way out of the scope, exceptions included. Autocast state is
/// thread-local, so a scope must be destroyed on the thread that created it (the host's loop does).
class AutocastScope final : public ForwardScope {
 public:
  AutocastScope(c10::DeviceType type, at::ScalarType dtype, bool cache_enabled, bool enabled = true)
      : type_(type),
        prev_cache_enabled_(at::autocast::is_autocast_cache_enabled()),
        prev_enabled_(at::autocast::is_autocast_enabled(type)),
        prev_dtype_(at::autocast::get_autocast_dtype(type)) {
    at::autocast::set_autocast_enabled(type_, enabled);
    at::autocast::set_autocast_dtype(type_, dtype);
    at::autocast::increment_nesting();
    at::autocast::set_autocast_cache_enabled(cache_enabled);
  }
  ~AutocastScope() override {
    // Drop the cache when leaving the outermost autocast scope (as Python's __exit__ does).
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(type_, prev_enabled_);
    at::autocast::set_autocast_dtype(type_, prev_dtype_);
    at::autocast::set_autocast_cache_enabled(prev_cache_enabled_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType type_;
  bool prev_cache_enabled_;
  bool prev_enabled_;
  at::ScalarType prev_dtype_;
};

/// The `memory_format` parameter of the built-in precision plugins: auto | channels_last | contiguous.
inline ParamSpec memory_format_param() {
  return ParamSpec::choice("memory_format", "auto", {"auto", "channels_last", "contiguous"})
      .doc("layout of 4-D weights and inputs: channels_last converts the model's 4-D parameters and the host then "
           "converts each input batch once in the loader; auto = channels_last for convolutional models on the "
           "CPU, and on CUDA under reduced precision (tensor cores)");
}

/// Applies memory_format (`choice`, see memory_format_param()) to `model` on `device`; `reduced` is true
/// under bf16/fp16 autocast. Returns what Precision::prepare() returns: ChannelsLast inputs when the model
/// is now channels_last (a model without 4-D parameters never is).
inline PreparedModel apply_memory_format(const std::string& choice, torch::nn::Module& model, c10::Device device,
                                         bool reduced) {
  PreparedModel prepared;
  if (choice == "contiguous") return prepared;
  bool convolutional = false;
  for (const auto& p : model.parameters()) convolutional = convolutional || p.dim() == 4;
  if (!convolutional) return prepared;
  // Measured (docs/benchmarks.md): on the CPU oneDNN's channels_last convolutions are ~2x faster for the
  // quickstart CNN; on CUDA cuDNN gains from it with tensor-core (bf16/fp16) kernels, not in float32.
  if (choice == "auto" && !(device.is_cpu() || reduced)) return prepared;
  to_channels_last(model);
  prepared.input_memory_format = at::MemoryFormat::ChannelsLast;
  return prepared;
}

}  // namespace loom
