// A guard in front of toml++: measures what its parser would recurse on, so a hostile config is an error
// with a position instead of a stack overflow. Used by Config::load and --set (config.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace loom::host {

// toml++ parses dotted keys and table headers recursively and frees the resulting tables recursively:
// a header of 50,000 parts overflows the stack (a segfault, not a parse error). Its own limit,
// TOML_MAX_NESTED_VALUES, covers only arrays and inline tables. Loom's configs nest a few levels, so a
// scan of the text rejects anything deep before toml++ sees it.
constexpr int kMaxKeyParts = 64;
constexpr int kMaxDepth = 128;
// Far above any real config.
constexpr size_t kMaxConfigBytes = 1 << 20;

struct GuardError {
  int64_t line = 0, column = 0;
  std::string message;
};

/// A scan of TOML text that measures what toml++ would recurse on: the parts of each table header and
/// dotted key, and the nesting of values (header parts + key parts + arrays). It understands valid TOML
/// only as far as it needs to; where it is unsure it stops and leaves the text to toml++, which reads in
/// the same order and so rejects the same spot before reaching anything the scan did not measure.
class DepthGuard {
 public:
  explicit DepthGuard(std::string_view text) : s_(text) {}

  std::optional<GuardError> scan() {
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;  // a UTF-8 byte order mark, which toml++ skips
    while (!error_ && skip_blank_lines()) {
      if (s_[i_] == '[') {
        const size_t start = i_;
        i_ += at(i_ + 1) == '[' ? 2 : 1;
        const int parts = key(start, "a table header");
        if (parts < 0) break;
        header_parts_ = parts;
        while (i_ < s_.size() && (s_[i_] == ']' || s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
      } else {
        const size_t start = i_;
        const int parts = key(start, "a dotted key");
        if (parts < 0 || !deep_enough(start, header_parts_ + parts) || at(i_) != '=') break;
        ++i_;
        if (!value(header_parts_ + parts)) break;
      }
      skip_spaces();
      if (at(i_) == '#') skip_comment();
      if (i_ < s_.size() && s_[i_] != '\n' && s_[i_] != '\r') break;  // toml++ will say what is wrong
    }
    return error_;
  }

 private:
  char at(size_t k) const { return k < s_.size() ? s_[k] : '\0'; }

  void fail(size_t where, std::string message) {
    if (error_) return;
    int64_t line = 1;
    size_t line_start = 0;
    for (size_t k = 0; k < where && k < s_.size(); ++k)
      if (s_[k] == '\n') ++line, line_start = k + 1;
    error_ = GuardError{line, static_cast<int64_t>(where - line_start) + 1, std::move(message)};
  }

  bool deep_enough(size_t where, int depth) {
    if (depth <= kMaxDepth) return true;
    fail(where, "values nest more than " + std::to_string(kMaxDepth) +
                    " levels deep (table header parts, dotted key parts and arrays together); a Loom config "
                    "nests a few levels at most");
    return false;
  }

  void skip_spaces() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  void skip_comment() {
    while (i_ < s_.size() && s_[i_] != '\n') ++i_;
  }
  /// Spaces, newlines and comments; false at the end of the text.
  bool skip_blank_lines() {
    for (;;) {
      skip_spaces();
      if (at(i_) == '#') skip_comment();
      if (i_ < s_.size() && (s_[i_] == '\n' || s_[i_] == '\r')) {
        ++i_;
        continue;
      }
      return i_ < s_.size();
    }
  }

  static bool bare_key_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  }

  /// One quoted string at i_ ("...", '...', """...""" or '''...'''); false where the scan is unsure.
  bool string() {
    const char q = s_[i_];
    const bool multi = at(i_ + 1) == q && at(i_ + 2) == q;
    i_ += multi ? 3 : 1;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '\\' && q == '"') {
        i_ += 2;
      } else if (c == q && (!multi || (at(i_ + 1) == q && at(i_ + 2) == q))) {
        i_ += multi ? 3 : 1;
        if (multi)  // up to two quotes may end the content right before the delimiter
          for (int extra = 0; extra < 2 && at(i_) == q; ++extra) ++i_;
        return true;
      } else if (c == '\n' && !multi) {
        return false;
      } else {
        ++i_;
      }
    }
    return false;
  }

  /// A key of one or more dotted parts at i_; its part count, or -1 where the scan is unsure.
  int key(size_t start, const char* what) {
    int parts = 0;
    for (;;) {
      skip_spaces();
      if (at(i_) == '"' || at(i_) == '\'') {
        const char q = at(i_);
        if (at(i_ + 1) == q && at(i_ + 2) == q) return -1;  // a multi-line string is no key
        if (at(i_ + 1) == q) i_ += 2;                       // "" is a valid (empty) key
        else if (!string()) return -1;
      } else {
        const size_t begin = i_;
        while (i_ < s_.size() && bare_key_char(s_[i_])) ++i_;
        if (i_ == begin) return -1;
      }
      if (++parts > kMaxKeyParts) {
        fail(start, std::string(what) + " with more than " + std::to_string(kMaxKeyParts) +
                        " dotted parts; Loom's tables and keys are a name or two, e.g. [dataset] or lr = 0.1");
        return -1;
      }
      skip_spaces();
      if (at(i_) != '.') return parts;
      ++i_;
    }
  }

  /// Spaces, newlines and comments inside an array.
  void skip_array_blanks() {
    for (;;) {
      skip_spaces();
      if (at(i_) == '#') skip_comment();
      if (at(i_) == '\n' || at(i_) == '\r') {
        ++i_;
        continue;
      }
      return;
    }
  }

  /// One value at i_, nested `depth` levels; false where the scan is unsure or found it too deep.
  bool value(int depth) {
    skip_spaces();
    const char c = at(i_);
    if (c == '"' || c == '\'') return string();
    if (c == '[') {
      if (!deep_enough(i_, depth + 1)) return false;
      ++i_;
      for (;;) {
        skip_array_blanks();
        if (at(i_) == ']') return ++i_, true;
        if (!value(depth + 1)) return false;
        skip_array_blanks();
        if (at(i_) == ',') ++i_;
        else if (at(i_) != ']') return false;
      }
    }
    if (c == '{') {
      ++i_;
      for (;;) {
        skip_array_blanks();
        if (at(i_) == '}') return ++i_, true;
        const size_t start = i_;
        const int parts = key(start, "a dotted key");
        if (parts < 0 || !deep_enough(start, depth + parts) || at(i_) != '=') return false;
        ++i_;
        if (!value(depth + parts)) return false;
        skip_array_blanks();
        if (at(i_) == ',') ++i_;
        else if (at(i_) != '}') return false;
      }
    }
    // A number, boolean or date: everything up to a delimiter. A date and a time may be separated by one
    // space (1979-05-27 07:32:00).
    const size_t begin = i_;
    while (i_ < s_.size() && std::string_view(" \t\r\n,]}#").find(s_[i_]) == std::string_view::npos) ++i_;
    if (i_ == begin) return false;
    if (i_ - begin == 10 && s_[begin + 4] == '-' && at(i_) == ' ' && at(i_ + 1) >= '0' && at(i_ + 1) <= '9') {
      ++i_;
      while (i_ < s_.size() && std::string_view(" \t\r\n,]}#").find(s_[i_]) == std::string_view::npos) ++i_;
    }
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
  int header_parts_ = 0;
  std::optional<GuardError> error_;
};

}  // namespace loom::host
