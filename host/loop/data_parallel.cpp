#include "loop/data_parallel.h"

#include "loop/stop.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <chrono>

namespace loom::host {

DataParallel::DataParallel(Slot<Communicator> communicator, c10::Device device)
    : communicator_(std::move(communicator)), device_(device) {
  if (communicator_) {
    rank_ = communicator_.call<&Communicator::rank>();
    world_ = communicator_.call<&Communicator::world_size>();
  }
}

void DataParallel::broadcast_model(torch::nn::Module& model) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> state;
  for (const auto& p : model.parameters()) state.push_back(p.detach());
  for (const auto& b : model.buffers()) state.push_back(b.detach());
  communicator_.call<&Communicator::broadcast>(state, 0);
}

int64_t DataParallel::agree(int64_t value) {
  if (!active()) return value;
  at::Tensor agreed = at::full({1}, value, at::TensorOptions().dtype(at::kLong).device(device_));
  communicator_.call<&Communicator::broadcast>(std::vector<at::Tensor>{agreed}, 0);
  return agreed.item<int64_t>();
}

void DataParallel::all_reduce_grads(torch::nn::Module& model) {
  if (!active()) return;
  std::vector<at::Tensor> grads;
  for (auto& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);  // no samples on this rank in this step
    grads.push_back(p.grad());
  }
  const auto start = std::chrono::steady_clock::now();
  communicator_.call<&Communicator::all_reduce>(grads, ReduceOp::Avg);
  allreduce_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void DataParallel::average_pending_grads(torch::nn::Module& model) {
  if (!active()) return;
  // Gradients carried past this point (a group that spans the epoch end) are each rank's own; averaging
  // them now changes nothing (the step's average of averages plus new local sums is the same average).
  at::Tensor any = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(device_));
  for (const auto& p : model.parameters())
    if (p.grad().defined()) any.fill_(1.0);
  communicator_.call<&Communicator::all_reduce>(std::vector<at::Tensor>{any}, ReduceOp::Max);
  if (any.item<float>() > 0) all_reduce_grads(model);
}

std::pair<bool, bool> DataParallel::agree_to_stop(bool signal, bool stage_stop) {
  if (!active()) return {signal, stage_stop};
  at::Tensor flags = at::tensor({signal ? 1.0f : 0.0f, stage_stop ? 1.0f : 0.0f}).to(device_);
  communicator_.call<&Communicator::all_reduce>(std::vector<at::Tensor>{flags}, ReduceOp::Max);
  const bool any_signal = flags[0].item<float>() > 0, any_stage_stop = flags[1].item<float>() > 0;
  if (any_signal) request_stop();  // a rank that got no signal stops with the others
  return {any_signal, any_stage_stop};
}

void DataParallel::sum(at::Tensor& t) {
  if (active()) communicator_.call<&Communicator::all_reduce>(std::vector<at::Tensor>{t}, ReduceOp::Sum);
}

void DataParallel::sync_batchnorm(const std::vector<std::shared_ptr<torch::nn::Module>>& batchnorms) {
  if (!active()) return;
  std::vector<at::Tensor> stats;
  for (const auto& bn : batchnorms)
    for (const auto& b : bn->buffers(/*recurse=*/false))
      if (b.is_floating_point()) stats.push_back(b.detach());
  if (!stats.empty()) communicator_.call<&Communicator::all_reduce>(stats, ReduceOp::Avg);
}

void DataParallel::verify_replicas(torch::nn::Module& model, int64_t step) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  at::Tensor sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device_));
  for (const auto& p : model.parameters()) sum += p.detach().to(at::kDouble).sum();
  at::Tensor both = at::stack({sum, -sum});  // max of both: the largest and (negated) the smallest checksum
  communicator_.call<&Communicator::all_reduce>(std::vector<at::Tensor>{both}, ReduceOp::Max);
  const double high = both[0].item<double>(), low = -both[1].item<double>();
  if (high != low)
    throw std::runtime_error("[run] verify_replicas: the ranks' weights differ after optimizer step " + std::to_string(step) +
                             " (checksums from " + std::to_string(low) + " to " + std::to_string(high) + ")");
}

double DataParallel::take_allreduce_seconds() {
  const double s = allreduce_seconds_;
  allreduce_seconds_ = 0.0;
  return s;
}

}  // namespace loom::host
