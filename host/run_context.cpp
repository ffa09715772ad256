#include "run_context.h"

#include <ATen/CPUGeneratorImpl.h>

namespace loom::host {

uint64_t derive_seed(uint64_t seed, std::string_view stream) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(seed >> (8 * i)));
  for (char c : stream) mix(static_cast<unsigned char>(c));
  return h;
}

at::Generator HostRunContext::generator(std::string_view stream) const {
  return at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed_, stream));
}

}  // namespace loom::host
