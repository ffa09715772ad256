#include "loop/evaluation.h"

#include "loop/loader.h"
#include "loop/loss.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cmath>

namespace loom::host {

namespace {

/// Restores train/eval mode when leaving a scope.
struct ModeGuard {
  torch::nn::Module& module;
  bool was_training;
  explicit ModeGuard(torch::nn::Module& m) : module(m), was_training(m.is_training()) {}
  ~ModeGuard() { module.train(was_training); }
};

}  // namespace

void check_view(const View& view, int64_t dataset_size, const char* what) {
  if (!view.indices.defined() || view.indices.dim() != 1 || view.indices.scalar_type() != at::kLong)
    throw std::invalid_argument(std::string(what) + ": view.indices must be a 1-D int64 tensor");
  const int64_t n = view.indices.size(0);
  if (n > 0 && (view.indices.min().item<int64_t>() < 0 || view.indices.max().item<int64_t>() >= dataset_size))
    throw std::invalid_argument(std::string(what) + ": view.indices out of the dataset's range [0, " +
                                std::to_string(dataset_size) + ")");
  if (view.targets.defined() && view.targets.size(0) != n)
    throw std::invalid_argument(std::string(what) + ": view.targets has " + std::to_string(view.targets.size(0)) +
                                " rows for " + std::to_string(n) + " indices");
  if (view.weights.defined() && view.weights.numel() != n)
    throw std::invalid_argument(std::string(what) + ": view.weights has " + std::to_string(view.weights.numel()) +
                                " entries for " + std::to_string(n) + " indices");
}

at::Tensor correct_count(const at::Tensor& logits, const at::Tensor& targets) {
  return logits.argmax(1).eq(target_classes(targets)).sum();
}

EvalSums Evaluator::run(Model& model, const View& view, bool keep_probabilities) const {
  check_view(view, dataset.size(), keep_probabilities ? "predict" : "evaluate");
  EvalSums sums;
  const int64_t n = view.indices.size(0);
  if (n == 0) return sums;
  ModeGuard mode(model);
  model.eval();
  torch::NoGradGuard no_grad;
  LoaderOptions options;
  options.batch_size = batch_size;
  options.prefetch = prefetch;
  options.device = device;
  options.memory_format = models.of(model).input_format;
  const int64_t lo = n * dp.rank() / dp.world(), hi = n * (dp.rank() + 1) / dp.world();
  Loader loader(dataset, labels, view, at::arange(lo, hi, at::kLong), 0, options);
  const auto dev_opts = at::TensorOptions().dtype(at::kDouble).device(device);
  at::Tensor loss_sum = at::zeros({}, dev_opts), correct = at::zeros({}, dev_opts);
  std::vector<at::Tensor> probabilities;
  while (auto b = loader.next()) {
    at::Tensor logits;
    {
      auto scope = precision.call<&Precision::forward_scope>(device);
      logits = guarded(models.of(model).who, "forward", [&] { return model.forward(b->x); });
    }
    logits = logits.to(at::kFloat);
    at::Tensor per_sample = per_sample_loss(logits, b->y);
    if (b->w.defined()) per_sample = per_sample * b->w;
    loss_sum += per_sample.sum().to(at::kDouble);
    correct += correct_count(logits, b->y).to(at::kDouble);
    if (keep_probabilities) probabilities.push_back(at::softmax(logits, 1).cpu());
  }
  if (dp.active()) {
    at::Tensor both = at::stack({loss_sum, correct});
    dp.sum(both);
    loss_sum = both[0];
    correct = both[1];
  }
  sums.loss = loss_sum.item<double>();
  sums.correct = correct.item<double>();
  sums.samples = n;
  if (keep_probabilities) {
    at::Tensor mine = probabilities.empty() ? at::Tensor() : at::cat(probabilities, 0);
    if (dp.active()) {  // an all-gather as a sum: every rank fills its rows of a zero tensor
      at::Tensor all = at::zeros({n, dataset.spec().num_classes}, at::TensorOptions().dtype(at::kFloat).device(device));
      if (mine.defined()) all.narrow(0, lo, hi - lo).copy_(mine);
      dp.sum(all);
      mine = all.cpu();
    }
    sums.probabilities = mine;
  }
  return sums;
}

EvalResult Evaluator::evaluate(Model& model, const View& view) const {
  const EvalSums s = run(model, view, false);
  EvalResult r;
  r.samples = s.samples;
  r.loss = s.samples ? s.loss / static_cast<double>(s.samples) : std::nan("");
  r.accuracy = s.samples ? s.correct / static_cast<double>(s.samples) : std::nan("");
  return r;
}

at::Tensor Evaluator::predict(Model& model, const View& view) const {
  EvalSums s = run(model, view, true);
  if (!s.probabilities.defined()) return at::empty({0, dataset.spec().num_classes}, at::kFloat);
  return s.probabilities;
}

}  // namespace loom::host
