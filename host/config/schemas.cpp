// The schemas of the host's own tables: [run], [loader], [optimizer], [lr_schedule], [loss]. Like a plugin's,
// they are data: validated, defaulted and documented (`loom plugins --json`, docs/config-reference.md).
#include "config/resolve.h"

namespace loom::host {

const Schema& run_schema() {
  static const Schema schema = {
      ParamSpec::string("name", "loom").doc("run name; outputs go to <output_dir>/<name>/<timestamp>/"),
      ParamSpec::integer("seed", 0).at_least(0).doc("seeds model init, data order, augmentation and dropout"),
      ParamSpec::string("device", "auto").doc("auto | cpu | cuda | cuda:N (auto: cuda when available)"),
      ParamSpec::integer("epochs", 1).range(1, 1000000).doc("epochs per training stage"),
      ParamSpec::path("output_dir", "runs").doc("where run directories are created"),
      ParamSpec::path("cache_dir", "cache").doc("where caches are kept (shared between runs)"),
      ParamSpec::string_list("plugin_paths", {}).doc("extra plugin directories, relative to this file"),
      ParamSpec::integer("threads", 0).range(0, 1024)
          .doc("intra-op CPU threads; 0 = all available cores (divided among the ranks on this host)"),
      ParamSpec::integer("val_every", 1).range(1, 1000000)
          .doc("validate every n-th epoch of a stage and its last (callbacks' on_validation_end fires then only); "
               "> 1 saves time when an epoch is short next to the validation split"),
      ParamSpec::integer("log_every_seconds", 10)
          .range(1, 3600)
          .doc("interval of plain progress lines when stderr is not a terminal"),
      ParamSpec::boolean("sync_bn", false)
          .doc("distributed: average BatchNorm running statistics over the ranks after every epoch (else each rank keeps its own)"),
      ParamSpec::boolean("verify_replicas", false)
          .doc("distributed: compare a checksum of every rank's weights after each optimizer step; fail if they differ"),
      ParamSpec::choice("test_on", "last", {"last", "best"})
          .doc("the final test evaluates the last weights, or the best ones kept by a [[callback]] such as best-checkpoint"),
  };
  return schema;
}

const Schema& loader_schema() {
  static const Schema schema = {
      ParamSpec::integer("batch_size", 128).range(1, 1 << 20).doc("samples per micro-batch"),
      ParamSpec::integer("eval_batch_size", 1024).range(1, 1 << 20).doc("samples per batch in predict/evaluate"),
      ParamSpec::integer("prefetch", -1)
          .range(-1, 64)
          .doc("batches prepared ahead on a background thread; 0 = none; -1 = auto (CUDA 2, CPU 0)"),
      ParamSpec::boolean("shuffle", true).doc("reshuffle the training order every epoch (seeded)"),
  };
  return schema;
}

const Schema& optimizer_schema() {
  static const Schema schema = {
      ParamSpec::choice("name", "adamw", {"sgd", "adamw"}).doc("optimizer"),
      ParamSpec::real("lr", 1e-3).range(0.0, 1e3).doc("peak learning rate"),
      ParamSpec::real("weight_decay", 0.0).range(0.0, 10.0).doc("decoupled (adamw) or L2 (sgd) weight decay"),
      ParamSpec::real("momentum", 0.9).range(0.0, 1.0).doc("sgd momentum"),
      ParamSpec::boolean("nesterov", false).doc("sgd Nesterov momentum"),
      ParamSpec::real("beta1", 0.9).range(0.0, 1.0).doc("adamw beta1"),
      ParamSpec::real("beta2", 0.999).range(0.0, 1.0).doc("adamw beta2"),
      ParamSpec::real("eps", 1e-8).range(0.0, 1.0).doc("adamw epsilon"),
      ParamSpec::choice("implementation", "auto", {"auto", "fused", "foreach", "loop"})
          .doc("update kernels, same arithmetic as torch.optim: fused (one kernel per group; CPU, CUDA), foreach "
               "(one call per operation over all tensors), loop (per tensor); auto = fused on CPU/CUDA"),
      ParamSpec::boolean("no_decay_norm_and_bias", false)
          .doc("no weight decay on biases and norm weights (tensors of <= 1 dimension), as timm and FFCV do"),
  };
  return schema;
}

const Schema& lr_schedule_schema() {
  static const Schema schema = {
      ParamSpec::choice("name", "constant", {"constant", "cosine", "one-cycle"}).doc("schedule, in optimizer steps"),
      ParamSpec::integer("warmup_steps", 0).at_least(0).doc("linear warmup from 0 (constant, cosine)"),
      ParamSpec::real("min_lr", 0.0).at_least(0.0).doc("cosine: final learning rate"),
      ParamSpec::real("pct_start", 0.3).range(0.0, 1.0).doc("one-cycle: fraction of steps spent rising"),
      ParamSpec::real("div_factor", 25.0).range(1.0, 1e6).doc("one-cycle: initial lr = lr / div_factor"),
      ParamSpec::real("final_div_factor", 1e4).range(1.0, 1e9).doc("one-cycle: final lr = initial / this"),
  };
  return schema;
}

const Schema& loss_schema() {
  static const Schema schema = {
      ParamSpec::choice("name", "cross-entropy", {"cross-entropy"})
          .doc("the training loss; hard (class index) and soft (probability) targets through one code path"),
      ParamSpec::real("label_smoothing", 0.0)
          .range(0.0, 0.999)
          .doc("as torch cross_entropy's: targets become (1 - s)·target + s/classes; training loss only "
               "(val/test losses stay plain cross-entropy, comparable between runs)"),
  };
  return schema;
}

}  // namespace loom::host
