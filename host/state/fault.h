// Fault injection for the crash tests (tests/test_crash.cpp): LOOM_FAULT_KILL=<point>:<n> makes the
// process kill itself with SIGKILL at the n-th time it reaches <point> — e.g. "checkpoint:2" halfway
// through the second checkpoint commit (new file written, generations not yet rotated). Unset (always, in
// normal use) it costs one branch. Points: checkpoint (new checkpoint written, generations not yet
// rotated), model (a model.pt / stage file / best.pt written, not yet renamed into place).
#pragma once

namespace loom::host {

void fault_point(const char* name);

}  // namespace loom::host
