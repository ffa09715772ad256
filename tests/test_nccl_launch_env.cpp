// The nccl communicator's reading of its launcher's variables (plugins/communicator/nccl/launch_env.cpp):
// free of CUDA, so it is checked here on any machine; the plugin itself needs a GPU (scripts/gpu-check.sh).
#include "launch_env.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace loom::test {
namespace {

using builtin::nccl_launch::Launch;
using builtin::nccl_launch::read_launch;

/// vars[key] = value, spelled so that GCC 12 at -O3 does not warn: assigning a string literal to a map
/// element here trips a -Wstringop-overflow false positive inside char_traits.
void set(std::map<std::string, std::string>& vars, const std::string& key, const std::string& value) {
  vars.insert_or_assign(key, value);
}

Launch read(const std::map<std::string, std::string>& vars) {
  return read_launch([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

/// The message of the error read() throws for `vars` ("" when it does not throw).
std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    read(vars);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

const std::map<std::string, std::string> kTorchrun = {{"RANK", "5"},        {"WORLD_SIZE", "8"},
                                                      {"LOCAL_RANK", "1"},  {"LOCAL_WORLD_SIZE", "4"},
                                                      {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}};

TEST(NcclLaunchEnv, ReadsTorchrunVariables) {
  const Launch l = read(kTorchrun);
  EXPECT_EQ(l.rank, 5);
  EXPECT_EQ(l.world_size, 8);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.local_size, 4);
  EXPECT_EQ(l.master_addr, "node0");
  EXPECT_EQ(l.master_port, 29500);
  EXPECT_FALSE(l.agent_store);
  EXPECT_EQ(l.key_prefix, "loom/nccl/");
}

TEST(NcclLaunchEnv, ReadsMpirunVariablesAndPrefersTorchrunOnes) {
  const Launch l = read({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                         {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.world_size, 4);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.local_size, 2);

  auto both = kTorchrun;
  both.insert({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
  EXPECT_EQ(read(both).rank, 5);
  EXPECT_EQ(read(both).world_size, 8);
}

TEST(NcclLaunchEnv, TorchrunsAgentStoreAndRestarts) {
  auto vars = kTorchrun;
  set(vars, "TORCHELASTIC_USE_AGENT_STORE", "True");
  set(vars, "TORCHELASTIC_RESTART_COUNT", "2");
  const Launch l = read(vars);
  EXPECT_TRUE(l.agent_store);
  EXPECT_EQ(l.key_prefix, "loom/nccl/2/");
}

TEST(NcclLaunchEnv, AMissingVariableIsNamedWithALaunchExample) {
  for (const std::string var : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) {
    SCOPED_TRACE(var);
    auto vars = kTorchrun;
    vars.erase(var);
    const std::string msg = error_of(vars);
    EXPECT_NE(msg.find("environment variable " + var + " is not set"), std::string::npos) << msg;
    EXPECT_NE(msg.find("torchrun --nproc-per-node"), std::string::npos) << msg;
    EXPECT_NE(msg.find("mpirun"), std::string::npos) << msg;
  }
  EXPECT_NE(error_of({}).find("nor mpirun's OMPI_COMM_WORLD_SIZE"), std::string::npos);
}

TEST(NcclLaunchEnv, BadValuesAreNamed) {
  auto vars = kTorchrun;
  set(vars, "RANK", "8");
  EXPECT_NE(error_of(vars).find("RANK=8 is not an integer in [0, 7]"), std::string::npos) << error_of(vars);
  vars = kTorchrun;
  set(vars, "LOCAL_RANK", "one");
  EXPECT_NE(error_of(vars).find("LOCAL_RANK=one is not an integer"), std::string::npos) << error_of(vars);
  vars = kTorchrun;
  set(vars, "MASTER_PORT", "70000");
  EXPECT_NE(error_of(vars).find("MASTER_PORT=70000 is not an integer in [1, 65535]"), std::string::npos);
  vars = kTorchrun;
  set(vars, "LOCAL_WORLD_SIZE", "9");
  EXPECT_NE(error_of(vars).find("LOCAL_WORLD_SIZE=9 is not an integer in [1, 8]"), std::string::npos);
}

}  // namespace
}  // namespace loom::test
