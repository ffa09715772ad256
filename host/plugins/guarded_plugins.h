// The one adapter the slots cannot replace: the run's dataset is handed to other plugins (the cache wraps
// it, models and augmentations read its spec, the self-training driver reads its splits and labels), which
// call it through the loom::Dataset interface. GuardedDataset is that interface over a Slot<Dataset>, so
// their calls are attributed to the dataset (or cache) plugin too. Every other plugin object the host
// holds is a Slot (plugins/slot.h) and has no adapter.
//
// Keep it complete: every virtual of loom::Dataset is overridden here (tests/test_loop.cpp's
// GuardedDatasetMethods runs a dataset that throws in each method and checks the name in the error).
#pragma once

#include "plugins/slot.h"

#include <loom/dataset.h>

#include <memory>

namespace loom::host {

class GuardedDataset final : public Dataset {
 public:
  explicit GuardedDataset(Slot<Dataset> slot) : slot_(std::move(slot)) {}
  SampleSpec spec() const override { return slot_.call<&Dataset::spec>(); }
  int64_t size() const override { return slot_.call<&Dataset::size>(); }
  at::Tensor indices(Split s) const override { return slot_.call<&Dataset::indices>(s); }
  at::Tensor labels() const override { return slot_.call<&Dataset::labels>(); }
  at::Tensor load(const at::Tensor& i) const override { return slot_.call<&Dataset::load>(i); }
  std::string fingerprint() const override { return slot_.call<&Dataset::fingerprint>(); }
  std::map<std::string, int64_t> counters() const override { return slot_.call<&Dataset::counters>(); }
  const PluginRef& who() const { return slot_.who(); }

 private:
  Slot<Dataset> slot_;
};

}  // namespace loom::host
