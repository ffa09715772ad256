// The pieces config errors are written with: the edit distance behind "did you mean", lists, a node as a
// message names it, long paths shortened, numbers without a needless fraction, and the file system's
// length limits.
#pragma once

#include <toml++/toml.h>

#include <cstddef>
#include <string>
#include <vector>

namespace loom::host {

size_t edit_distance(const std::string& a, const std::string& b);

/// "a, b, c".
std::string join(const std::vector<std::string>& items);

/// A node for an error message: its type and, for a scalar, its value ("integer 3", "an array").
std::string describe_node(const toml::node& n);

// Linux's limits (PATH_MAX counts the terminating NUL); every file system Loom runs on has them.
constexpr size_t kPathMax = 4096;
constexpr size_t kNameMax = 255;

/// The start of a long path or name, for an error message that must not be kilobytes long.
std::string shorten(const std::string& s);

/// A number as a message shows it: integral values without a fraction.
std::string fmt_num(double v);

}  // namespace loom::host
