// The neutral communicator: one process, every collective a no-op.
#pragma once

#include <loom/communicator.h>
#include <loom/registrar.h>

namespace loom::builtin {

class NoCommunicator final : public Communicator {
 public:
  static FeatureInfo info();
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  c10::DeviceType device_type() const override { return c10::DeviceType::CPU; }
  void all_reduce(const std::vector<at::Tensor>& tensors, ReduceOp op) override;
  void broadcast(const std::vector<at::Tensor>&, int) override {}
  void barrier() override {}
  void abort(const std::string&) override {}
};

}  // namespace loom::builtin
