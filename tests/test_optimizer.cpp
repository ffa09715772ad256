// [optimizer]: Loom's SGD and AdamW in their three implementations (fused, foreach, loop) against
// torch.optim's own on the same gradient trajectory (tests/python/optimizer_reference.py, same torch
// install), parameter groups without weight decay for biases and norm weights, and optimizer state that
// survives a checkpoint whatever the implementation.
#include "test_util.h"

#include "loop/optim.h"
#include "config/resolve.h"

#include "common/npy/npy_tensor.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <sstream>

namespace loom::test {
namespace {

constexpr int kSteps = 6;

struct Case {
  std::string name, impl;
  double weight_decay = 0.01, momentum = 0.0;
  bool nesterov = false, no_decay = false;
};

std::string describe(const Case& c) {
  std::ostringstream o;
  o << c.name << " " << c.impl << " wd " << c.weight_decay << " momentum " << c.momentum << (c.nesterov ? " nesterov" : "")
    << (c.no_decay ? " no_decay_norm_and_bias" : "");
  return o.str();
}

Params optimizer_params(const Case& c) {
  std::map<std::string, Value> v;
  for (const auto& s : host::optimizer_schema()) v[s.name] = *s.default_value;
  v["name"] = c.name;
  v["implementation"] = c.impl;
  v["weight_decay"] = c.weight_decay;
  v["momentum"] = c.momentum;
  v["nesterov"] = c.nesterov;
  v["no_decay_norm_and_bias"] = c.no_decay;
  v["lr"] = 0.05;
  return Params(v);
}

/// A conv weight (channels_last, as a precision plugin leaves it), its bias, a linear weight, a norm weight.
struct Net {
  std::vector<std::pair<std::string, at::Tensor>> named;
  Net() {
    torch::manual_seed(7);
    named = {{"features.0.weight", torch::randn({4, 3, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast)},
             {"features.0.bias", torch::randn({4})},
             {"head.weight", torch::randn({5, 6})},
             {"norm.weight", torch::ones({6})}};
    for (auto& [n, t] : named) t.requires_grad_(true);
  }
  std::vector<at::Tensor> tensors() const {
    std::vector<at::Tensor> out;
    for (const auto& [n, t] : named) out.push_back(t);
    return out;
  }
};

struct Trajectory {
  std::vector<std::vector<at::Tensor>> grads;  // [step][tensor]
  std::vector<double> lrs;
};

Trajectory trajectory(const Net& net) {
  torch::manual_seed(11);
  Trajectory t;
  for (int k = 0; k < kSteps; ++k) {
    std::vector<at::Tensor> step;
    for (const auto& p : net.tensors()) step.push_back(torch::randn(p.sizes()) * (k + 1));
    t.grads.push_back(step);
    t.lrs.push_back(0.05 * (k + 1) / kSteps + 0.01 * (k % 2));  // changes every step, as a schedule would
  }
  return t;
}

void run_steps(torch::optim::Optimizer& opt, const Net& net, const Trajectory& t, int from, int to) {
  auto params = net.tensors();
  for (int k = from; k < to; ++k) {
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = t.grads[k][i].clone();
    for (auto& g : opt.param_groups()) g.options().set_lr(t.lrs[k]);
    opt.step();
  }
}

/// torch.optim's result for `c` over the whole trajectory.
std::vector<at::Tensor> python_reference(const Case& c, const Net& initial, const Trajectory& t, const std::string& impl) {
  const TempDir dir;
  const auto params = initial.tensors();
  for (size_t i = 0; i < params.size(); ++i) npy::save_tensor(dir / ("init_" + std::to_string(i) + ".npy"), params[i].detach());
  for (int k = 0; k < kSteps; ++k)
    for (size_t i = 0; i < params.size(); ++i)
      npy::save_tensor(dir / ("grad_" + std::to_string(k + 1) + "_" + std::to_string(i) + ".npy"), t.grads[k][i]);
  npy::save_tensor(dir / "lrs.npy", torch::tensor(t.lrs, at::kDouble));
  std::ostringstream cmd;
  cmd.precision(17);
  cmd << LOOM_TEST_PYTHON << " " << LOOM_TEST_SOURCE_DIR << "/tests/python/optimizer_reference.py " << dir.path().string()
      << " --tensors " << params.size() << " --steps " << kSteps << " --name " << c.name << " --impl " << impl
      << " --weight-decay " << c.weight_decay << " --momentum " << c.momentum << " --nesterov " << int(c.nesterov);
  if (c.no_decay) cmd << " --no-decay 1,3";  // the bias and the norm weight
  cmd << " --channels-last 0";                 // the conv weight, as Net lays it out
  const CommandResult py = run(cmd.str());
  EXPECT_EQ(py.exit_code, 0) << py.output;
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < params.size(); ++i) out.push_back(npy::load_tensor(dir / ("expected_" + std::to_string(i) + ".npy")));
  return out;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a.detach() - b.detach()).abs().max().item<double>(); }

TEST(OptimizerImplementations, MatchTorchOptimOnTheSameGradients) {
  std::vector<Case> cases;
  for (const std::string impl : {"fused", "foreach", "loop"}) {
    cases.push_back({"adamw", impl, 0.01});
    cases.push_back({"adamw", impl, 0.05, 0.0, false, /*no_decay=*/true});
    cases.push_back({"sgd", impl, 0.01, 0.9});
    cases.push_back({"sgd", impl, 0.0, 0.9, /*nesterov=*/true});
    cases.push_back({"sgd", impl, 0.001, 0.0});
    cases.push_back({"sgd", impl, 0.01, 0.9, false, /*no_decay=*/true});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(describe(c));
    const Net reference_start;
    const Trajectory t = trajectory(reference_start);
    const auto expected = python_reference(c, reference_start, t, c.impl);
    Net net;
    auto built = host::make_optimizer(optimizer_params(c), net.named, c10::kCPU);
    EXPECT_EQ(host::to_string(built.impl), c.impl);
    EXPECT_EQ(built.optimizer->param_groups().size(), c.no_decay ? 2u : 1u);
    run_steps(*built.optimizer, net, t, 0, kSteps);
    const auto got = net.tensors();
    ASSERT_EQ(expected.size(), got.size());
    for (size_t i = 0; i < got.size(); ++i) {
      // fused and foreach run torch.optim's very kernels and scalars: bit for bit. LibTorch's loop
      // orders AdamW's arithmetic differently from torch.optim's for-loop: rounding only.
      if (c.impl == "loop")
        EXPECT_LE(max_diff(got[i], expected[i]), 1e-6) << "tensor " << i;
      else
        EXPECT_EQ(max_diff(got[i], expected[i]), 0.0) << "tensor " << i;
    }
    EXPECT_TRUE(net.named[0].second.is_contiguous(at::MemoryFormat::ChannelsLast)) << "the update keeps the layout";
  }
}

TEST(OptimizerImplementations, AutoIsFusedOnTheCpu) {
  Case c{"adamw", "auto"};
  Net net;
  auto built = host::make_optimizer(optimizer_params(c), net.named, c10::kCPU);
  EXPECT_EQ(built.impl, host::OptimizerImpl::Fused);
  EXPECT_NE(built.description.find("fused, auto"), std::string::npos) << built.description;
}

TEST(OptimizerImplementations, NoDecayGroupsHoldBiasesAndNormWeights) {
  Case c{"adamw", "fused", 0.1, 0.0, false, true};
  Net net;
  auto built = host::make_optimizer(optimizer_params(c), net.named, c10::kCPU);
  const auto& groups = built.optimizer->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  ASSERT_EQ(groups[0].params().size(), 2u);
  EXPECT_TRUE(groups[0].params()[0].is_same(net.named[0].second));  // conv weight
  EXPECT_TRUE(groups[0].params()[1].is_same(net.named[2].second));  // linear weight
  EXPECT_DOUBLE_EQ(static_cast<const torch::optim::AdamWOptions&>(groups[0].options()).weight_decay(), 0.1);
  ASSERT_EQ(groups[1].params().size(), 2u);
  EXPECT_TRUE(groups[1].params()[0].is_same(net.named[1].second));  // conv bias
  EXPECT_TRUE(groups[1].params()[1].is_same(net.named[3].second));  // norm weight
  EXPECT_DOUBLE_EQ(static_cast<const torch::optim::AdamWOptions&>(groups[1].options()).weight_decay(), 0.0);
  EXPECT_NE(built.description.find("none on 2 biases and norm weights"), std::string::npos) << built.description;
}

TEST(OptimizerImplementations, StateSurvivesACheckpointAcrossImplementations) {
  for (const std::string name : {"adamw", "sgd"}) {
    SCOPED_TRACE(name);
    const Case fused{name, "fused", 0.01, 0.9};
    const Net start;
    const Trajectory t = trajectory(start);
    // uninterrupted, fused
    Net whole;
    auto a = host::make_optimizer(optimizer_params(fused), whole.named, c10::kCPU);
    run_steps(*a.optimizer, whole, t, 0, kSteps);
    // stopped after 3 steps, saved, resumed by a fresh fused optimizer and by a foreach one
    for (const std::string resume_impl : {"fused", "foreach"}) {
      SCOPED_TRACE("resumed with " + resume_impl);
      Net part;
      auto b = host::make_optimizer(optimizer_params(fused), part.named, c10::kCPU);
      run_steps(*b.optimizer, part, t, 0, 3);
      std::ostringstream bytes;
      {
        torch::serialize::OutputArchive out;
        b.optimizer->save(out);
        out.save_to(bytes);
      }
      Case resumed = fused;
      resumed.impl = resume_impl;
      auto c = host::make_optimizer(optimizer_params(resumed), part.named, c10::kCPU);
      std::istringstream in_bytes(bytes.str());
      torch::serialize::InputArchive in;
      in.load_from(in_bytes);
      c.optimizer->load(in);
      run_steps(*c.optimizer, part, t, 3, kSteps);
      for (size_t i = 0; i < whole.named.size(); ++i) {
        const double d = max_diff(whole.named[i].second, part.named[i].second);
        if (resume_impl == "fused")
          EXPECT_EQ(d, 0.0) << "tensor " << i << ": the step counts and moments must resume exactly";
        else
          EXPECT_LE(d, 1e-6) << "tensor " << i;
      }
    }
  }
}

TEST(OptimizerImplementations, RejectsFusedForIntegerParameters) {
  Case c{"adamw", "fused"};
  std::vector<std::pair<std::string, at::Tensor>> named{{"counter", torch::zeros({3}, at::kLong)}};
  try {
    host::make_optimizer(optimizer_params(c), named, c10::kCPU);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'counter'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("foreach"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace loom::test
