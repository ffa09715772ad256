// loom_bench_augment: times Loom's augmentation ops on ready batches, as the host runs them per
// micro-batch: uint8 pixels → the dataset's normalised float samples (from_pixels) → the ops in order,
// one CPU generator per batch. Used by tests/bench/bench_augment.py; prints one JSON object.
//
//   loom_bench_augment --plugin-dir DIR --shape C,H,W [--batch B] [--batches N] [--warmup K]
//                      [--threads T] [--classes K] --op "NAME [key=value ...]" [--op ...]
//   loom_bench_augment --plugin-dir DIR --has NAME      exit status 0 when the op NAME is built
//
// The ops see a stand-in dataset that declares the pixel affine of Normalize(mean 0.5, std 0.25) per
// channel (ops such as randaugment need one). List parameters take comma-separated values.
#include "plugins/registry.h"
#include "plugins/run_context.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

using namespace loom;

namespace {

class StandIn final : public Dataset {
 public:
  explicit StandIn(SampleSpec spec) : spec_(std::move(spec)) {}
  SampleSpec spec() const override { return spec_; }
  int64_t size() const override { return 0; }
  at::Tensor indices(Split) const override { return at::empty({0}, at::kLong); }
  at::Tensor labels() const override { return at::empty({0}, at::kLong); }
  at::Tensor load(const at::Tensor&) const override { throw std::logic_error("loom_bench_augment: no samples"); }
  std::string fingerprint() const override { return "bench-augment"; }

 private:
  SampleSpec spec_;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

Value parse(const ParamSpec& spec, const std::string& text) {
  switch (spec.type) {
    case ParamType::Bool: return Value{text == "true" || text == "1"};
    case ParamType::Int: return Value{static_cast<int64_t>(std::stoll(text))};
    case ParamType::Float: return Value{std::stod(text)};
    case ParamType::IntList: {
      std::vector<int64_t> v;
      for (const auto& s : split(text, ',')) v.push_back(std::stoll(s));
      return Value{v};
    }
    case ParamType::FloatList: {
      std::vector<double> v;
      for (const auto& s : split(text, ',')) v.push_back(std::stod(s));
      return Value{v};
    }
    default: return Value{text};
  }
}

std::shared_ptr<Augmentation> create(const host::Registry& registry, const std::string& op_spec,
                                     host::HostRunContext& ctx, const std::shared_ptr<Dataset>& dataset) {
  const std::vector<std::string> words = split(op_spec, ' ');
  const host::Feature* f = words.empty() ? nullptr : registry.find(Kind::Augmentation, words[0]);
  if (!f) throw std::invalid_argument("no augmentation op '" + op_spec + "' in the plugin dir");
  std::map<std::string, Value> values;
  for (const auto& spec : f->info.params)
    if (spec.default_value) values[spec.name] = *spec.default_value;
  for (size_t i = 1; i < words.size(); ++i) {
    const size_t eq = words[i].find('=');
    const std::string key = words[i].substr(0, eq);
    const auto spec = std::find_if(f->info.params.begin(), f->info.params.end(), [&](const auto& s) { return s.name == key; });
    if (eq == std::string::npos || spec == f->info.params.end())
      throw std::invalid_argument(words[0] + ": no parameter '" + key + "'");
    values[key] = parse(*spec, words[i].substr(eq + 1));
  }
  return registry.create<Augmentation>(*f, CreateContext{Params(values), ctx, dataset});
}

}  // namespace

int main(int argc, char** argv) {
  std::string plugin_dir, has;
  std::vector<int64_t> shape;
  std::vector<std::string> ops;
  int64_t batch = 128, batches = 20, warmup = 3, classes = 10;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--plugin-dir") plugin_dir = v;
    else if (a == "--has") has = v;
    else if (a == "--shape") for (const auto& s : split(v, ',')) shape.push_back(std::stoll(s));
    else if (a == "--batch") batch = std::stoll(v);
    else if (a == "--batches") batches = std::stoll(v);
    else if (a == "--warmup") warmup = std::stoll(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--classes") classes = std::stoll(v);
    else if (a == "--op") ops.push_back(v);
    else return std::cerr << "loom_bench_augment: unknown option " << a << "\n", 2;
  }
  host::Registry registry;
  registry.scan({plugin_dir});
  if (!has.empty()) return registry.find(Kind::Augmentation, has) ? 0 : 1;
  if (shape.size() != 3 || ops.empty()) return std::cerr << "usage: see the top of tests/bench/bench_augment.cpp\n", 2;
  try {
    at::set_num_threads(threads);
    host::HostLogger logger;
    host::HostRunContext ctx(logger, c10::kCPU, 0, threads, {}, {});
    SampleSpec spec{.shape = shape, .dtype = at::kFloat, .num_classes = classes, .class_names = {}};
    spec.pixel_scale.assign(static_cast<size_t>(shape[0]), 1.0 / (255.0 * 0.25));
    spec.pixel_shift.assign(static_cast<size_t>(shape[0]), -0.5 / 0.25);
    const auto dataset = std::make_shared<StandIn>(spec);
    std::vector<std::shared_ptr<Augmentation>> pipeline;
    for (const auto& o : ops) pipeline.push_back(create(registry, o, ctx, dataset));

    at::Generator data = at::make_generator<at::CPUGeneratorImpl>(1);
    const at::Tensor pixels = at::randint(0, 256, {batch, shape[0], shape[1], shape[2]}, data, at::kByte);
    const at::Tensor labels = at::randint(0, classes, {batch}, data, at::kLong);
    double checksum = 0, seconds = 0;
    for (int64_t b = 0; b < warmup + batches; ++b) {
      const auto t0 = std::chrono::steady_clock::now();
      at::Generator g = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(b));
      AugmentBatch ab{from_pixels(pixels, spec), labels, {}};
      for (const auto& op : pipeline) op->apply(ab, g);
      checksum += ab.x.select(0, 0).sum().item<double>();
      if (b >= warmup) seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::string joined;
    for (const auto& o : ops) joined += (joined.empty() ? "" : " → ") + o;
    std::printf("{\"ops\": \"%s\", \"batch\": %lld, \"batches\": %lld, \"threads\": %d, \"seconds\": %.4f, "
                "\"samples_per_second\": %.1f, \"checksum\": %.6g}\n",
                joined.c_str(), static_cast<long long>(batch), static_cast<long long>(batches), threads, seconds,
                static_cast<double>(batch * batches) / seconds, checksum);
  } catch (const std::exception& e) {
    std::cerr << "loom_bench_augment: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
