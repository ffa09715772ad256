// Reads a plugin library's LoomPluginInfo straight from the ELF file, without loading it, so a library
// built for another SDK ABI, LibTorch or C++ ABI never runs a static initialiser in this process.
#pragma once

#include <loom/abi.h>

#include <filesystem>
#include <optional>
#include <string>

namespace loom::host {

/// The info record from the ".loom_plugin" section; nullopt when the file has no such section.
/// Throws std::runtime_error when the file is not a readable 64-bit ELF shared object.
std::optional<LoomPluginInfo> read_plugin_info(const std::filesystem::path& file);

/// Empty when `info` matches this host; otherwise the reason, naming both versions and the fix.
std::string check_compatibility(const LoomPluginInfo& info);

/// The host's own values, as a plugin compiled with this SDK would record them.
LoomPluginInfo host_plugin_info();

}  // namespace loom::host
