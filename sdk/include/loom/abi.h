/* Loom plugin ABI: the plain-C prefix every plugin library carries.
 *
 * The host reads this before it runs a single line of a plugin's code:
 *   1. LoomPluginInfo is placed in the ELF section ".loom_plugin"; the host reads that section from the
 *      file on disk (no dlopen, so a mismatched build never runs its static initialisers) and refuses
 *      the library unless abi_version, torch_version and cxx11_abi equal its own.
 *   2. Only then is the library loaded and `loom_plugin_library()` called; the returned struct repeats the
 *      info (checked again) and carries the C++ registration callback.
 *
 * Version rule (LLVM's): LOOM_ABI_VERSION is bumped whenever this struct, any SDK interface's virtual
 * functions, or any struct passed across the boundary changes. The host accepts an exact match only.
 *
 * Plugin authors do not fill these by hand: use LOOM_PLUGIN_LIBRARY() from <loom/plugin.h>.
 */
#ifndef LOOM_ABI_H
#define LOOM_ABI_H

#include <stdint.h>

#define LOOM_ABI_VERSION 6u
#define LOOM_SDK_VERSION "0.6.0"
#define LOOM_PLUGIN_INFO_SECTION ".loom_plugin"
#define LOOM_PLUGIN_ENTRY_POINT "loom_plugin_library"
#define LOOM_PLUGIN_INFO_MAGIC "LOOMPLG"

#ifdef __cplusplus
extern "C" {
#endif

/* Fixed-size, plain-old-data: readable straight from the file. Strings are NUL-terminated. */
typedef struct LoomPluginInfo {
  char magic[8];              /* LOOM_PLUGIN_INFO_MAGIC */
  uint32_t abi_version;       /* LOOM_ABI_VERSION the library was compiled against */
  uint32_t cxx11_abi;         /* _GLIBCXX_USE_CXX11_ABI of the build (std::string layout) */
  char sdk_version[16];       /* LOOM_SDK_VERSION, informational */
  char torch_version[32];     /* TORCH_VERSION, e.g. "2.15.0"; must equal the host's */
  char library_name[64];      /* e.g. "loom_cache_npy" */
  char library_version[32];   /* the library's own version, e.g. "1.0.0" */
} LoomPluginInfo;

/* Returned by the entry point. `register_features` receives a loom::Registrar* (C++). */
typedef struct LoomPluginLibrary {
  LoomPluginInfo info;
  void (*register_features)(void* registrar);
} LoomPluginLibrary;

/* The one exported symbol: const LoomPluginLibrary* loom_plugin_library(void); */
typedef const LoomPluginLibrary* (*LoomPluginEntryPoint)(void);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_ABI_H */
