// The built-in LR schedules, cross-checked against PyTorch's own schedulers (same torch install).
#include "test_util.h"

#include "loop/optim.h"
#include "config/resolve.h"

#include <gtest/gtest.h>

namespace loom::test {
namespace {

Params schedule(const std::string& name, int64_t warmup = 0) {
  std::map<std::string, Value> v;
  for (const auto& s : host::lr_schedule_schema()) v[s.name] = *s.default_value;
  v["name"] = name;
  v["warmup_steps"] = warmup;
  v["min_lr"] = 0.001;
  return Params(v);
}

std::vector<double> python_lrs(const std::string& body) {
  TempDir dir;
  write_file(dir / "s.py", "import torch\nm = torch.nn.Linear(1, 1)\nopt = torch.optim.SGD(m.parameters(), lr=0.1)\n" + body +
                               "\nout = []\nfor _ in range(100):\n    out.append(opt.param_groups[0]['lr'])\n"
                               "    opt.step(); s.step()\nprint(' '.join(repr(x) for x in out))\n");
  const CommandResult r = run(std::string(LOOM_TEST_PYTHON) + " " + (dir / "s.py").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<double> lrs;
  std::istringstream in(r.output);
  double x;
  while (in >> x) lrs.push_back(x);
  return lrs;
}

TEST(LrSchedule, CosineMatchesPyTorch) {
  const host::LrSchedule s(schedule("cosine"), 0.1, 100);
  const auto ref = python_lrs("s = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100, eta_min=0.001)");
  ASSERT_EQ(ref.size(), 100u);
  for (int64_t i = 0; i < 100; ++i) EXPECT_NEAR(s.lr(i), ref[static_cast<size_t>(i)], 1e-12) << "step " << i;
  EXPECT_NEAR(s.lr(100), 0.001, 1e-12);
}

TEST(LrSchedule, OneCycleMatchesPyTorch) {
  const host::LrSchedule s(schedule("one-cycle"), 0.1, 100);
  const auto ref = python_lrs("s = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=100, "
                              "pct_start=0.3, div_factor=25.0, final_div_factor=1e4, cycle_momentum=False)");
  ASSERT_EQ(ref.size(), 100u);
  for (int64_t i = 0; i < 100; ++i) EXPECT_NEAR(s.lr(i), ref[static_cast<size_t>(i)], 1e-12) << "step " << i;
}

TEST(LrSchedule, WarmupThenConstant) {
  const host::LrSchedule s(schedule("constant", 4), 0.1, 100);
  EXPECT_NEAR(s.lr(0), 0.02, 1e-12);
  EXPECT_NEAR(s.lr(3), 0.08, 1e-12);
  EXPECT_NEAR(s.lr(4), 0.1, 1e-12);
  EXPECT_NEAR(s.lr(99), 0.1, 1e-12);
}

}  // namespace
}  // namespace loom::test
