// Every call into a plugin goes through guarded(): whatever a plugin throws, on whichever thread, reaches
// the user as `<kind> plugin '<name>' (<library file>) failed in <method>: <what>` — LibTorch's C++ stack
// traces stripped (c10::Error::what_without_backtrace()). Errors already attributed (PluginError) and the
// host's own control flow (Interrupted) pass through unchanged, so a failure deep inside a nested call
// (the driver → the loop → a precision step) names the plugin that failed, not the outermost caller.
#pragma once

#include "plugins/registry.h"

#include <c10/util/Exception.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace loom::host {

/// Thrown out of the loop after a stop request (SIGINT/SIGTERM) once the checkpoint is written.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Which plugin a call goes to, for messages.
struct PluginRef {
  Kind kind = Kind::Dataset;
  std::string name;
  std::string library;  ///< the library's file name, e.g. libloom_precision_amp_fp16.so

  static PluginRef of(const Feature& feature) {
    return {feature.info.kind, feature.info.name, feature.library ? feature.library->file.filename().string() : "built-in"};
  }
  /// "precision plugin 'amp-fp16' (libloom_precision_amp_fp16.so)"
  std::string describe() const { return std::string(to_string(kind)) + " plugin '" + name + "' (" + library + ")"; }
};

/// The message of an exception, without a LibTorch backtrace.
inline std::string error_text(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

template <class F>
decltype(auto) guarded(const PluginRef& who, std::string_view method, F&& call) {
  try {
    return std::forward<F>(call)();
  } catch (const PluginError&) {
    throw;
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    throw PluginError(who.describe() + " failed in " + std::string(method) + ": " + error_text(e));
  } catch (...) {
    throw PluginError(who.describe() + " failed in " + std::string(method) + " with an exception that is not a std::exception");
  }
}

}  // namespace loom::host
