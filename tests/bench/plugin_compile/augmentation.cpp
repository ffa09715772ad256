// The smallest augmentation plugin: flips each sample's last dim with probability 0.5.
#include <loom/augmentation.h>
#include <loom/library.h>

#include <ATen/ops/rand.h>
#include <ATen/ops/where.h>

namespace {

class Flip final : public loom::Augmentation {
 public:
  void apply(loom::AugmentBatch& batch, at::Generator& generator) const override {
    const at::Tensor flip = at::rand({batch.x.size(0)}, generator).lt(0.5).to(batch.x.device());
    std::vector<int64_t> shape(static_cast<size_t>(batch.x.dim()), 1);
    shape[0] = batch.x.size(0);
    batch.x = at::where(flip.view(shape), batch.x.flip({-1}), batch.x);
  }
};

void register_features(loom::Registrar& r) {
  r.add<loom::Augmentation>({.name = "flip", .version = "1.0.0", .summary = "flips the last dim"},
                            [](const loom::CreateContext&) { return std::make_shared<Flip>(); });
}

}  // namespace

LOOM_PLUGIN_LIBRARY("bench_augmentation", "1.0.0", register_features)
