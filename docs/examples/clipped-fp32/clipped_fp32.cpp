// A precision plugin in one file: float32 with the gradients' total L2 norm clipped to max_norm, and the
// number of clipped steps per epoch in the report. The host calls, per optimizer step:
//   { auto scope = forward_scope(device); forward + loss }   backward(weighted loss) per micro-batch
//   step(optimizer) once; a skipped step (StepResult::skipped) never advances the LR schedule.
// prepare() returns how the host must feed the model: here the built-ins' memory_format (channels_last
// where it is faster), so this plugin loses nothing against fp32. <loom/precision_helpers.h> has the
// pieces (clip_gradients, apply_memory_format, AutocastScope, …) and includes the optimizer's and the
// module's headers, which <loom/precision.h> only declares.
//
//   [precision]
//   plugin = "clipped-fp32"
//   max_norm = 1.0
#include <loom/library.h>
#include <loom/precision.h>
#include <loom/precision_helpers.h>

#include <ATen/ops/scalar_tensor.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace example {

class ClippedFp32 final : public loom::Precision {
 public:
  ClippedFp32(double max_norm, std::string memory_format) : max_norm_(max_norm), memory_format_(std::move(memory_format)) {}

  loom::PreparedModel prepare(torch::nn::Module& model, c10::Device device) override {
    return loom::apply_memory_format(memory_format_, model, device, /*reduced=*/false);
  }

  // float32 as it is: nothing to switch on around the forward.
  std::unique_ptr<loom::ForwardScope> forward_scope(c10::Device) override {
    return std::make_unique<loom::ForwardScope>();
  }
  void backward(const at::Tensor& loss) override { loss.backward(); }

  loom::StepResult step(torch::optim::Optimizer& optimizer) override {
    const double norm = loom::clip_gradients(optimizer, max_norm_);  // the norm before clipping
    if (norm > max_norm_) ++clipped_;
    optimizer.step();
    return {.skipped = false, .grad_norm = norm};
  }

  // Read once per epoch: report this epoch's count, then start the next one.
  std::map<std::string, loom::MetricValue> epoch_metrics() override {
    const int64_t n = clipped_;
    clipped_ = 0;
    return {{"clipped_steps", n}};
  }
  // Checkpointed, so a resumed run reports the same count for the interrupted epoch.
  loom::StateDict state_dict() const override {
    return {{"clipped", at::scalar_tensor(clipped_, at::TensorOptions().dtype(at::kLong))}};
  }
  void load_state_dict(const loom::StateDict& state) override {
    const auto it = state.find("clipped");
    if (it == state.end()) throw std::invalid_argument("clipped-fp32: the checkpoint's state lacks 'clipped'");
    clipped_ = it->second.item<int64_t>();
  }

  static loom::FeatureInfo info() {
    return {.name = "clipped-fp32",
            .version = "1.0.0",
            .summary = "float32 with gradient-norm clipping (an example precision plugin)",
            .params = {loom::ParamSpec::real("max_norm", 1.0).at_least(1e-6).doc("clip the gradients' total L2 norm to this"),
                       loom::memory_format_param()}};
  }

 private:
  double max_norm_;
  std::string memory_format_;
  int64_t clipped_ = 0;
};

}  // namespace example

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Precision>(example::ClippedFp32::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<example::ClippedFp32>(ctx.params.real("max_norm"), ctx.params.str("memory_format"));
  });
}

LOOM_PLUGIN_LIBRARY("loom_precision_clipped_fp32", "1.0.0", register_features)
