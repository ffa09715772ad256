#include "synthetic.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace loom::builtin {
namespace {

at::Tensor sorted(const at::Tensor& indices) { return std::get<0>(indices.sort()); }

// Labels cycle through the classes (balanced to within one) and are then shuffled.
at::Tensor balanced_labels(int64_t count, int64_t classes, at::Generator& generator) {
  const at::Tensor cyclic = at::arange(count, at::kLong).remainder(classes);
  return cyclic.index_select(0, at::randperm(count, generator, at::kLong));
}

}  // namespace

FeatureInfo Synthetic::info() {
  return {
      .name = "synthetic",
      .version = "1.0.0",
      .summary = "deterministic generated data (noisy class prototypes) for tests",
      .params = {
          ParamSpec::integer("samples", 2048).at_least(10).doc("training samples (val, labeled and unlabeled)"),
          ParamSpec::integer("test_samples", 512).at_least(1).doc("test samples"),
          ParamSpec::real("val_fraction", 0.1).range(0.0, 0.9)
              .doc("fraction of the training samples held out for validation"),
          ParamSpec::real("labeled_fraction", 1.0).range(0.0, 1.0)
              .doc("fraction of the non-validation samples that are labeled (> 0); the rest are unlabeled"),
          ParamSpec::integer("classes", 4).range(2, 1000).doc("number of classes"),
          ParamSpec::integer("channels", 1).range(1, 4).doc("image channels"),
          ParamSpec::integer("height", 8).range(1, 1024).doc("image height"),
          ParamSpec::integer("width", 8).range(1, 1024).doc("image width"),
          ParamSpec::real("noise", 0.5).at_least(0.0).doc("standard deviation of the noise added to the prototypes"),
          ParamSpec::integer("data_seed", 0).doc("seeds the data and the splits (independent of the run seed)"),
          ParamSpec::removed("augment", "the dataset's random flip moved to the augmentation kind (Loom 0.4); remove "
                                        "augment from [dataset] and add [[augmentation]] plugin = \"flip\""),
      },
  };
}

Synthetic::Synthetic(const CreateContext& ctx) {
  const Params& p = ctx.params;
  const int64_t n_train = p.integer("samples");
  const int64_t n_test = p.integer("test_samples");
  const int64_t classes = p.integer("classes");
  const double val_fraction = p.real("val_fraction");
  const double labeled_fraction = p.real("labeled_fraction");
  const double noise = p.real("noise");
  // The schema's range is inclusive; an all-unlabeled training set would leave nothing to train on.
  if (labeled_fraction <= 0.0) throw std::invalid_argument("synthetic: labeled_fraction must be > 0");
  spec_ = {.shape = {p.integer("channels"), p.integer("height"), p.integer("width")},
           .dtype = at::kFloat,
           .num_classes = classes,
           .class_names = {}};

  // Everything comes from one explicit generator, drawn in a fixed order: the bytes depend on the
  // params alone, never on the run seed or the global RNG.
  at::Generator generator =
      at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(p.integer("data_seed")));
  std::vector<int64_t> prototype_shape = {classes};
  prototype_shape.insert(prototype_shape.end(), spec_.shape.begin(), spec_.shape.end());
  const at::Tensor prototypes = at::randn(prototype_shape, generator);
  labels_ = at::cat({balanced_labels(n_train, classes, generator), balanced_labels(n_test, classes, generator)});
  std::vector<int64_t> sample_shape = {n_train + n_test};
  sample_shape.insert(sample_shape.end(), spec_.shape.begin(), spec_.shape.end());
  samples_ = prototypes.index_select(0, labels_) + noise * at::randn(sample_shape, generator);

  const at::Tensor order = at::randperm(n_train, generator, at::kLong);
  const int64_t n_val = std::llround(val_fraction * n_train);
  const int64_t n_rest = n_train - n_val;
  const int64_t n_labeled = std::clamp<int64_t>(std::llround(labeled_fraction * n_rest), 1, n_rest);
  splits_.val = sorted(order.narrow(0, 0, n_val));
  splits_.labeled = sorted(order.narrow(0, n_val, n_labeled));
  splits_.unlabeled = sorted(order.narrow(0, n_val + n_labeled, n_rest - n_labeled));
  splits_.test = at::arange(n_train, n_train + n_test, at::kLong);

  std::ostringstream fp;
  fp << std::setprecision(17);  // distinct float params must give distinct fingerprints
  fp << "synthetic/" << info().version << ";samples=" << n_train << ";test_samples=" << n_test
     << ";val_fraction=" << val_fraction << ";labeled_fraction=" << labeled_fraction << ";classes=" << classes
     << ";shape=" << spec_.shape[0] << "x" << spec_.shape[1] << "x" << spec_.shape[2] << ";noise=" << noise
     << ";data_seed=" << p.integer("data_seed");
  fingerprint_ = fp.str();
}

SampleSpec Synthetic::spec() const { return spec_; }

int64_t Synthetic::size() const { return samples_.size(0); }

at::Tensor Synthetic::indices(Split split) const { return splits_[split]; }

at::Tensor Synthetic::labels() const { return labels_; }

at::Tensor Synthetic::load(const at::Tensor& indices) const {
  if (indices.scalar_type() != at::kLong || indices.dim() != 1)
    throw std::invalid_argument("synthetic: load() wants a 1-D int64 index tensor");
  return samples_.index_select(0, indices);
}

std::string Synthetic::fingerprint() const { return fingerprint_; }

}  // namespace loom::builtin
