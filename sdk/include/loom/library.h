// The one macro that makes a shared library a Loom plugin library, without any kind's interface: include
// this plus the header of each kind the library registers (<loom/callback.h>, <loom/model.h>, …) — a
// narrower include than <loom/plugin.h>, which pulls in every kind.
//
//   #include <loom/library.h>
//   #include <loom/callback.h>
//   static void register_features(loom::Registrar& r) {
//     r.add<loom::Callback>({.name = "my-callback", .version = "1.0.0", .summary = "...", .params = {...}},
//                           [](const loom::CreateContext& c) { return std::make_shared<MyCallback>(c); });
//   }
//   LOOM_PLUGIN_LIBRARY("my_callbacks", "1.0.0", register_features)
//
// The macro emits (1) the LoomPluginInfo in the ".loom_plugin" ELF section, which the host reads from the
// file before loading it, and (2) the C entry point `loom_plugin_library`.
#pragma once

#include <loom/abi.h>
#include <loom/registrar.h>

#include <torch/headeronly/version.h>

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define LOOM_CXX11_ABI_FLAG ((uint32_t)_GLIBCXX_USE_CXX11_ABI)
#else
#define LOOM_CXX11_ABI_FLAG 0u
#endif

#define LOOM_PLUGIN_INFO_INIT(LIB_NAME, LIB_VERSION) \
  { LOOM_PLUGIN_INFO_MAGIC, LOOM_ABI_VERSION, LOOM_CXX11_ABI_FLAG, LOOM_SDK_VERSION, TORCH_VERSION, LIB_NAME, LIB_VERSION }

#define LOOM_PLUGIN_LIBRARY(LIB_NAME, LIB_VERSION, REGISTER_FN)                                           \
  extern "C" __attribute__((visibility("default"), used, section(LOOM_PLUGIN_INFO_SECTION)))             \
  const LoomPluginInfo loom_plugin_info = LOOM_PLUGIN_INFO_INIT(LIB_NAME, LIB_VERSION);                   \
  static void loom_plugin_register_thunk_(void* registrar) {                                              \
    REGISTER_FN(*static_cast<::loom::Registrar*>(registrar));                                             \
  }                                                                                                       \
  extern "C" __attribute__((visibility("default"))) const LoomPluginLibrary* loom_plugin_library(void) { \
    static const LoomPluginLibrary library = {loom_plugin_info, &loom_plugin_register_thunk_};           \
    return &library;                                                                                      \
  }
