// Shared by early-stopping and best-checkpoint: which epoch metric they watch and which way is better.
#pragma once

#include <loom/callback.h>
#include <loom/params.h>

#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>

namespace loom::builtin::callback {

enum class Mode { Min, Max };

inline ParamSpec monitor_param(std::string default_key) {
  return ParamSpec::string("monitor", std::move(default_key))
      .doc("epoch metric to watch (val_loss, val_accuracy, train_loss, … or a callback's metric)");
}

inline ParamSpec mode_param() {
  return ParamSpec::choice("mode", "auto", {"auto", "min", "max"})
      .doc("which way is better; auto: max for metrics whose name contains \"acc\", else min");
}

inline Mode parse_mode(const std::string& choice, const std::string& monitor) {
  if (choice == "min") return Mode::Min;
  if (choice == "max") return Mode::Max;
  return monitor.find("acc") != std::string::npos ? Mode::Max : Mode::Min;
}

inline const char* to_string(Mode mode) { return mode == Mode::Min ? "min" : "max"; }

/// True when `value` beats `reference` by more than `margin`.
inline bool beats(Mode mode, double value, double reference, double margin = 0.0) {
  return mode == Mode::Min ? value < reference - margin : value > reference + margin;
}

/// "%.4g": enough to tell values apart in a message, short enough to read.
inline std::string short_number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", v);
  return buffer;
}

/// The monitored value of `report`. A missing key is a configuration mistake (a typo, or a metric this
/// run never reports), so it fails the run at the first epoch rather than letting the callback sit idle.
inline double monitored_value(const EpochReport& report, const std::string& key, const std::string& plugin) {
  auto it = report.metrics.find(key);
  if (it != report.metrics.end()) {
    if (std::optional<double> v = as_number(it->second)) return *v;
    throw std::runtime_error(plugin + ": monitor '" + key + "' has no numeric value in the report of epoch " +
                             std::to_string(report.epoch) + " of stage '" + report.stage +
                             "' (null: does the run have a validation split?)");
  }
  std::string keys;
  for (const auto& [name, value] : report.metrics)
    if (as_number(value)) keys += (keys.empty() ? "" : ", ") + name;
  throw std::runtime_error(plugin + ": monitor '" + key + "' is not in the epoch report of stage '" + report.stage +
                           "'; its numeric metrics are: " + (keys.empty() ? "(none)" : keys) +
                           " — set monitor to one of them");
}

}  // namespace loom::builtin::callback
