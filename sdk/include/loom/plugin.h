// Every SDK interface plus the one macro that makes a library a Loom plugin (<loom/library.h>). A plugin
// may include just <loom/library.h> and its kind's header instead, which compiles faster:
//
//   static void register_features(loom::Registrar& r) {
//     r.add<loom::Model>({.name = "mlp", .version = "1.0.0", .summary = "...", .params = {...}},
//                        [](const loom::CreateContext& c) { return std::make_shared<Mlp>(c); });
//   }
//   LOOM_PLUGIN_LIBRARY("loom_model_mlp", "1.0.0", register_features)
//
// The macro emits (1) the LoomPluginInfo in the ".loom_plugin" ELF section, which the host reads from the
// file before loading it, and (2) the C entry point `loom_plugin_library`.
#pragma once

#include <loom/library.h>

#include <loom/accumulation.h>
#include <loom/augmentation.h>
#include <loom/cache.h>
#include <loom/callback.h>
#include <loom/communicator.h>
#include <loom/context.h>
#include <loom/dataset.h>
#include <loom/kinds.h>
#include <loom/log.h>
#include <loom/metric_sink.h>
#include <loom/metrics.h>
#include <loom/model.h>
#include <loom/params.h>
#include <loom/precision.h>
#include <loom/self_training.h>
#include <loom/state.h>
