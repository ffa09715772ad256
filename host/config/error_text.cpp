#include "config/error_text.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>

namespace loom::host {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

std::string describe_node(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "string \"" + std::string(*n.as_string()) + "\"";
    case toml::node_type::integer: return "integer " + std::to_string(n.as_integer()->get());
    case toml::node_type::floating_point: { std::ostringstream o; o << "float " << n.as_floating_point()->get(); return o.str(); }
    case toml::node_type::boolean: return n.as_boolean()->get() ? "boolean true" : "boolean false";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

std::string shorten(const std::string& s) { return s.size() <= 80 ? s : s.substr(0, 60) + "…"; }

std::string fmt_num(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace loom::host
