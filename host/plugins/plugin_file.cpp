#include "plugins/plugin_file.h"

#include <torch/headeronly/version.h>

#include <elf.h>

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace loom::host {

namespace {

std::string fixed(const char* field, size_t size) { return std::string(field, strnlen(field, size)); }

template <class T>
void read_at(std::ifstream& in, uint64_t offset, T* out, size_t count, const std::filesystem::path& file) {
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(sizeof(T) * count));
  if (!in) throw std::runtime_error("truncated ELF file (cannot read at offset " +
                                    std::to_string(offset) + ")");
}

}  // namespace

std::optional<LoomPluginInfo> read_plugin_info(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open for reading");
  Elf64_Ehdr eh{};
  in.read(reinterpret_cast<char*>(&eh), sizeof eh);
  if (!in || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    throw std::runtime_error("not an ELF shared library");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || (eh.e_machine != EM_X86_64 && eh.e_machine != EM_AARCH64))
    throw std::runtime_error("not a 64-bit library for this machine");
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum)
    throw std::runtime_error("ELF file has no section table");

  std::vector<Elf64_Shdr> sections(eh.e_shnum);
  read_at(in, eh.e_shoff, sections.data(), sections.size(), file);
  const Elf64_Shdr& names = sections[eh.e_shstrndx];
  std::vector<char> strtab(names.sh_size + 1, '\0');
  read_at(in, names.sh_offset, strtab.data(), names.sh_size, file);

  for (const Elf64_Shdr& s : sections) {
    if (s.sh_name >= names.sh_size || std::strcmp(&strtab[s.sh_name], LOOM_PLUGIN_INFO_SECTION) != 0) continue;
    if (s.sh_size < sizeof(LoomPluginInfo) || s.sh_type == SHT_NOBITS)
      throw std::runtime_error("the " LOOM_PLUGIN_INFO_SECTION " section is too small (" +
                               std::to_string(s.sh_size) + " bytes); the library is damaged or not a Loom plugin");
    LoomPluginInfo info{};
    read_at(in, s.sh_offset, &info, 1, file);
    if (std::memcmp(info.magic, LOOM_PLUGIN_INFO_MAGIC, sizeof LOOM_PLUGIN_INFO_MAGIC) != 0)
      throw std::runtime_error("the " LOOM_PLUGIN_INFO_SECTION
                               " section does not start with the Loom magic; the library is damaged");
    return info;
  }
  return std::nullopt;
}

LoomPluginInfo host_plugin_info() {
  LoomPluginInfo info{};
  std::memcpy(info.magic, LOOM_PLUGIN_INFO_MAGIC, sizeof LOOM_PLUGIN_INFO_MAGIC);
  info.abi_version = LOOM_ABI_VERSION;
#if defined(_GLIBCXX_USE_CXX11_ABI)
  info.cxx11_abi = _GLIBCXX_USE_CXX11_ABI;
#endif
  std::strncpy(info.sdk_version, LOOM_SDK_VERSION, sizeof info.sdk_version - 1);
  std::strncpy(info.torch_version, TORCH_VERSION, sizeof info.torch_version - 1);
  return info;
}

std::string check_compatibility(const LoomPluginInfo& info) {
  const LoomPluginInfo host = host_plugin_info();
  const std::string lib = fixed(info.library_name, sizeof info.library_name);
  if (info.abi_version != host.abi_version) {
    return "library '" + lib + "' was built against Loom SDK ABI version " + std::to_string(info.abi_version) +
           " (SDK " + fixed(info.sdk_version, sizeof info.sdk_version) + "), but this loom supports ABI version " +
           std::to_string(host.abi_version) + " (SDK " LOOM_SDK_VERSION
           "). Rebuild the plugin against this Loom's SDK (find_package(Loom) from its install prefix) and "
           "reinstall it.";
  }
  const std::string torch = fixed(info.torch_version, sizeof info.torch_version);
  if (torch != fixed(host.torch_version, sizeof host.torch_version)) {
    return "library '" + lib + "' was built against LibTorch " + torch + ", but this loom uses LibTorch " +
           TORCH_VERSION ". Rebuild the plugin against the same torch wheel (python3 -m pip install torch==" +
           TORCH_VERSION ").";
  }
  if (info.cxx11_abi != host.cxx11_abi) {
    return "library '" + lib + "' was built with _GLIBCXX_USE_CXX11_ABI=" + std::to_string(info.cxx11_abi) +
           ", but this loom uses _GLIBCXX_USE_CXX11_ABI=" + std::to_string(host.cxx11_abi) +
           ". Rebuild the plugin with LibTorch's compile flags (link the Loom::sdk CMake target).";
  }
  return {};
}

}  // namespace loom::host
