#include "state/fault.h"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

namespace loom::host {

void fault_point(const char* name) {
  static const char* spec = std::getenv("LOOM_FAULT_KILL");
  if (!spec) return;
  static const std::string target = std::string(spec).substr(0, std::string(spec).find(':'));
  static const long at = std::strchr(spec, ':') ? std::atol(std::strchr(spec, ':') + 1) : 1;
  static long hits = 0;
  if (target == name && ++hits == at) std::raise(SIGKILL);
}

}  // namespace loom::host
