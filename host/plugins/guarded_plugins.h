// Proxies that put guarded() around every method of a plugin object the loop holds, so no call site can
// forget: the loop talks to these, never to the plugin's object directly. (Callbacks and metric sinks are
// guarded by their dispatchers, models at their forward calls.)
#pragma once

#include "plugins/plugin_guard.h"

#include <loom/accumulation.h>
#include <loom/communicator.h>
#include <loom/dataset.h>
#include <loom/precision.h>

#include <memory>

namespace loom::host {

class GuardedDataset final : public Dataset {
 public:
  GuardedDataset(std::shared_ptr<Dataset> inner, PluginRef who) : inner_(std::move(inner)), who_(std::move(who)) {}
  SampleSpec spec() const override { return guarded(who_, "spec", [&] { return inner_->spec(); }); }
  int64_t size() const override { return guarded(who_, "size", [&] { return inner_->size(); }); }
  at::Tensor indices(Split s) const override { return guarded(who_, "indices", [&] { return inner_->indices(s); }); }
  at::Tensor labels() const override { return guarded(who_, "labels", [&] { return inner_->labels(); }); }
  at::Tensor load(const at::Tensor& i) const override { return guarded(who_, "load", [&] { return inner_->load(i); }); }
  std::string fingerprint() const override { return guarded(who_, "fingerprint", [&] { return inner_->fingerprint(); }); }
  std::map<std::string, int64_t> counters() const override {
    return guarded(who_, "counters", [&] { return inner_->counters(); });
  }
  const PluginRef& who() const { return who_; }

 private:
  std::shared_ptr<Dataset> inner_;
  PluginRef who_;
};

class GuardedPrecision final : public Precision {
 public:
  GuardedPrecision(std::shared_ptr<Precision> inner, PluginRef who) : inner_(std::move(inner)), who_(std::move(who)) {}
  void prepare(torch::nn::Module& m, c10::Device d) override { guarded(who_, "prepare", [&] { inner_->prepare(m, d); }); }
  std::unique_ptr<ForwardScope> forward_scope(c10::Device d) override {
    return guarded(who_, "forward_scope", [&] { return inner_->forward_scope(d); });
  }
  void backward(const at::Tensor& loss) override { guarded(who_, "backward", [&] { inner_->backward(loss); }); }
  StepResult step(torch::optim::Optimizer& o) override { return guarded(who_, "step", [&] { return inner_->step(o); }); }
  StateDict state_dict() const override { return guarded(who_, "state_dict", [&] { return inner_->state_dict(); }); }
  void load_state_dict(const StateDict& s) override { guarded(who_, "load_state_dict", [&] { inner_->load_state_dict(s); }); }
  std::map<std::string, double> epoch_metrics() override {
    return guarded(who_, "epoch_metrics", [&] { return inner_->epoch_metrics(); });
  }

 private:
  std::shared_ptr<Precision> inner_;
  PluginRef who_;
};

class GuardedAccumulation final : public Accumulation {
 public:
  GuardedAccumulation(std::shared_ptr<Accumulation> inner, PluginRef who) : inner_(std::move(inner)), who_(std::move(who)) {}
  int64_t micro_batch_size(int64_t configured, const MicroBatchProbe& probe) override {
    return guarded(who_, "micro_batch_size", [&] { return inner_->micro_batch_size(configured, probe); });
  }
  EpochPlan plan(const PlanRequest& r) override { return guarded(who_, "plan", [&] { return inner_->plan(r); }); }
  BatchNormPolicy batchnorm_policy() const override {
    return guarded(who_, "batchnorm_policy", [&] { return inner_->batchnorm_policy(); });
  }
  StateDict state_dict() const override { return guarded(who_, "state_dict", [&] { return inner_->state_dict(); }); }
  void load_state_dict(const StateDict& s) override { guarded(who_, "load_state_dict", [&] { inner_->load_state_dict(s); }); }
  const PluginRef& who() const { return who_; }

 private:
  std::shared_ptr<Accumulation> inner_;
  PluginRef who_;
};

class GuardedCommunicator final : public Communicator {
 public:
  GuardedCommunicator(std::shared_ptr<Communicator> inner, PluginRef who) : inner_(std::move(inner)), who_(std::move(who)) {}
  int rank() const override { return guarded(who_, "rank", [&] { return inner_->rank(); }); }
  int world_size() const override { return guarded(who_, "world_size", [&] { return inner_->world_size(); }); }
  int local_rank() const override { return guarded(who_, "local_rank", [&] { return inner_->local_rank(); }); }
  int local_size() const override { return guarded(who_, "local_size", [&] { return inner_->local_size(); }); }
  c10::DeviceType device_type() const override { return guarded(who_, "device_type", [&] { return inner_->device_type(); }); }
  void all_reduce(const std::vector<at::Tensor>& t, ReduceOp op) override {
    guarded(who_, "all_reduce", [&] { inner_->all_reduce(t, op); });
  }
  void broadcast(const std::vector<at::Tensor>& t, int root) override {
    guarded(who_, "broadcast", [&] { inner_->broadcast(t, root); });
  }
  void barrier() override { guarded(who_, "barrier", [&] { inner_->barrier(); }); }
  void abort(const std::string& reason) override { guarded(who_, "abort", [&] { inner_->abort(reason); }); }
  const PluginRef& who() const { return who_; }

 private:
  std::shared_ptr<Communicator> inner_;
  PluginRef who_;
};

}  // namespace loom::host
