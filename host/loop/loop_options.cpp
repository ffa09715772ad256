#include "loop/loop_options.h"

namespace loom::host {

LoopOptions LoopOptions::from(const ResolvedConfig& config, c10::Device device) {
  LoopOptions o;
  o.batch_size = config.loader.integer("batch_size");
  o.eval_batch_size = config.loader.integer("eval_batch_size");
  // auto (-1): a background loader on CUDA, where batches are copied while the GPU computes; none on the
  // CPU, where a loader thread competes with the intra-op threads for the same cores — measured on the
  // 2-core VM: the MLP epoch 3.0 s with a loader thread, 1.0 s without (docs/benchmarks.md).
  const int64_t prefetch = config.loader.integer("prefetch");
  o.prefetch = prefetch >= 0 ? prefetch : device.is_cuda() ? 2 : 0;
  o.shuffle = config.loader.boolean("shuffle");
  o.epochs = config.run.integer("epochs");
  o.val_every = config.run.integer("val_every");
  o.log_every_seconds = static_cast<double>(config.run.integer("log_every_seconds"));
  o.sync_bn = config.run.boolean("sync_bn");
  o.verify_replicas = config.run.boolean("verify_replicas");
  o.test_on_best = config.run.str("test_on") == "best";
  o.label_smoothing = config.loss.real("label_smoothing");
  return o;
}

}  // namespace loom::host
