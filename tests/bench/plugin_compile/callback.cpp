// The smallest callback plugin: counts optimizer steps and reports them per epoch.
#include <loom/callback.h>
#include <loom/library.h>

namespace {

class Counter final : public loom::Callback {
 public:
  void on_optimizer_step(const loom::StepInfo&, loom::Model&, loom::Control&) override { ++steps_; }
  std::map<std::string, loom::MetricValue> epoch_metrics() override { return {{"counted_steps", steps_}}; }

 private:
  int64_t steps_ = 0;
};

void register_features(loom::Registrar& r) {
  r.add<loom::Callback>({.name = "counter", .version = "1.0.0", .summary = "counts steps"},
                        [](const loom::CreateContext&) { return std::make_shared<Counter>(); });
}

}  // namespace

LOOM_PLUGIN_LIBRARY("bench_callback", "1.0.0", register_features)
