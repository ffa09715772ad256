// trivial-augment: torchvision.transforms.v2.TrivialAugmentWide per sample — each sample draws one op of
// the 14, a uniform magnitude bin and a sign, with TrivialAugment Wide's ranges. Batched pixel-domain
// kernels: augmentation/common/image_ops.h.
#include "augmentation/common/auto_augment.h"

#include <loom/library.h>

namespace loom::augmentation {
namespace {

FeatureInfo info() {
  return {
      .name = "trivial-augment",
      .version = "1.0.0",
      .summary = "TrivialAugment Wide per sample: one random op of 14 at a random magnitude (torchvision TrivialAugmentWide)",
      .params = {
          ParamSpec::integer("num_magnitude_bins", 31).range(2, 1001)
              .doc("bins between no change and each op's strongest setting; each sample draws one uniformly"),
          ParamSpec::real("p", 1.0).range(0.0, 1.0).doc("probability that a sample is augmented (else left as is)"),
      },
  };
}

void register_features(Registrar& r) {
  r.add<Augmentation>(info(), [](const CreateContext& c) {
    AutoAugmentSettings s;
    s.name = "trivial-augment";
    s.space = OpSpace::TrivialAugmentWide;
    s.num_ops = 1;
    s.magnitude = -1;  // a uniform bin per sample
    s.num_bins = c.params.integer("num_magnitude_bins");
    s.p = c.params.real("p");
    return std::make_shared<AutoAugment>(s, c);
  });
}

}  // namespace
}  // namespace loom::augmentation

LOOM_PLUGIN_LIBRARY("loom_augmentation_trivial_augment", "1.0.0", loom::augmentation::register_features)
