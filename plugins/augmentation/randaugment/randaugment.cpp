// randaugment: torchvision.transforms.v2.RandAugment per sample — each sample draws its own num_ops ops
// from the 14 of the op space and its own signs, at a fixed magnitude bin (optionally with timm's
// Gaussian magnitude noise, magnitude_std). Batched pixel-domain kernels: augmentation/common/image_ops.h.
#include "augmentation/common/auto_augment.h"

#include <loom/library.h>

namespace loom::augmentation {
namespace {

FeatureInfo info() {
  return {
      .name = "randaugment",
      .version = "1.0.0",
      .summary = "RandAugment per sample: num_ops random ops of 14 at one magnitude (torchvision RandAugment)",
      .params = {
          ParamSpec::integer("num_ops", 2).range(0, 16).doc("ops applied one after the other to each sample"),
          ParamSpec::integer("magnitude", 9).range(0, 1000)
              .doc("the magnitude bin of every op, 0..num_magnitude_bins-1 (torchvision's magnitude)"),
          ParamSpec::integer("num_magnitude_bins", 31).range(2, 1001)
              .doc("bins between no change and each op's strongest setting"),
          ParamSpec::real("magnitude_std", 0.0).range(0.0, 100.0)
              .doc("timm's mstd: per sample and op, Gaussian noise of this standard deviation (in bins) added to "
                   "magnitude, clipped to [0, num_magnitude_bins-1]; 0: the fixed bin"),
          ParamSpec::real("p", 1.0).range(0.0, 1.0).doc("probability that a sample is augmented (else left as is)"),
      },
  };
}

void register_features(Registrar& r) {
  r.add<Augmentation>(info(), [](const CreateContext& c) {
    AutoAugmentSettings s;
    s.name = "randaugment";
    s.space = OpSpace::RandAugment;
    s.num_ops = c.params.integer("num_ops");
    s.magnitude = c.params.integer("magnitude");
    s.num_bins = c.params.integer("num_magnitude_bins");
    s.magnitude_std = c.params.real("magnitude_std");
    s.p = c.params.real("p");
    return std::make_shared<AutoAugment>(s, c);
  });
}

}  // namespace
}  // namespace loom::augmentation

LOOM_PLUGIN_LIBRARY("loom_augmentation_randaugment", "1.0.0", loom::augmentation::register_features)
