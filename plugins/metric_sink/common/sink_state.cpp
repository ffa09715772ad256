#include "sink_state.h"

#include <ATen/ATen.h>

#include <cstring>
#include <stdexcept>

namespace loom::sinks {

at::Tensor int_tensor(int64_t value) { return at::scalar_tensor(value, at::kLong); }

at::Tensor bytes_tensor(const std::string& bytes) {
  at::Tensor t = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  if (!bytes.empty()) std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

namespace {

const at::Tensor* find(const StateDict& state, const std::string& key) {
  auto it = state.find(key);
  return it == state.end() ? nullptr : &it->second;
}

[[noreturn]] void bad(const std::string& sink, const std::string& key, const std::string& expected,
                      const at::Tensor& t) {
  throw std::runtime_error("metric sink '" + sink + "': state '" + key + "' should be " + expected + ", found a " +
                           std::string(c10::toString(t.scalar_type())) + " tensor of shape " + c10::str(t.sizes()));
}

}  // namespace

std::optional<int64_t> state_int(const StateDict& state, const std::string& key, const std::string& sink) {
  const at::Tensor* t = find(state, key);
  if (!t) return std::nullopt;
  if (t->dim() != 0 || t->scalar_type() != at::kLong) bad(sink, key, "a 0-dim int64 tensor", *t);
  const int64_t v = t->item<int64_t>();
  if (v < 0) throw std::runtime_error("metric sink '" + sink + "': state '" + key + "' is negative (" +
                                      std::to_string(v) + ")");
  return v;
}

std::optional<std::string> state_bytes(const StateDict& state, const std::string& key, const std::string& sink) {
  const at::Tensor* t = find(state, key);
  if (!t) return std::nullopt;
  if (t->dim() != 1 || t->scalar_type() != at::kByte) bad(sink, key, "a 1-dim uint8 tensor", *t);
  const at::Tensor c = t->contiguous().cpu();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

}  // namespace loom::sinks
