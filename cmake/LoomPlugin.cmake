# loom_add_plugin(<target> SOURCES <src>... [LINK <libs>...] [OUTPUT_DIR <dir>] [PRECOMPILE_SDK])
#
# Builds one Loom plugin library: a MODULE (dlopen-only) shared library linked against the SDK, with
# hidden symbols (only the entry point and its info record are exported). Loom's own plugins and
# third-party plugins use this same helper.
#
#   SOURCES         the library's sources (required)
#   LINK            further libraries to link, privately
#   OUTPUT_DIR      where the .so is written (default: LOOM_PLUGIN_OUTPUT_DIR when set, else CMake's default)
#   PRECOMPILE_SDK  precompile <loom/library.h> for the target (target_precompile_headers), so the SDK's
#                   registration headers are parsed once per target rather than once per source file.
#                   It saves that parse in each source file after the first and costs the header's compilation
#                   once, so it pays from about three sources up; it does not cover the heavy headers
#                   (torch::nn for a model: a 2-source model plugin got slower with it, 17 → 22 s). For
#                   those, precompile what the sources share with CMake's own
#                   target_precompile_headers(<target> PRIVATE <loom/model.h>) instead
#                   (docs/benchmarks.md). Ignored inside Loom's tree, whose plugins reuse the shared
#                   precompiled header (<torch/torch.h> + <loom/plugin.h>).
#
# Build type: a third-party project configured without CMAKE_BUILD_TYPE (single-config generators
# default to none: no optimisation at all) gets -O2 on the plugin target, because an unoptimised plugin
# slows every training step it takes part in. An explicit -DCMAKE_BUILD_TYPE=Release/Debug/… (or a
# multi-config generator's configuration) is left alone.
#
# C++ ABI: LibTorch and loom use libstdc++'s C++11 ABI (_GLIBCXX_USE_CXX11_ABI=1). A plugin compiled with
# the other one (-D_GLIBCXX_USE_CXX11_ABI=0 in CMAKE_CXX_FLAGS, the directory's or the target's compile
# definitions or options, or a LINK target's interface) cannot link against LibTorch; loom_add_plugin
# stops the configure step with the fix instead (checked at the end of the calling directory, so flags
# added after the call count too).

# The ABI flag set anywhere CMake knows of for `target`; empty when none is.
function(_loom_cxx_abi_flags target out)
  string(TOUPPER "${CMAKE_BUILD_TYPE}" _cfg)
  set(_where "")
  foreach(_var CMAKE_CXX_FLAGS CMAKE_CXX_FLAGS_${_cfg})
    if("${${_var}}" MATCHES "_GLIBCXX_USE_CXX11_ABI=([01])")
      list(APPEND _where "${_var} sets _GLIBCXX_USE_CXX11_ABI=${CMAKE_MATCH_1}")
    endif()
  endforeach()
  foreach(_prop COMPILE_DEFINITIONS COMPILE_OPTIONS)
    get_directory_property(_v ${_prop})
    if("${_v}" MATCHES "_GLIBCXX_USE_CXX11_ABI=([01])")
      list(APPEND _where "the directory's ${_prop} sets _GLIBCXX_USE_CXX11_ABI=${CMAKE_MATCH_1}")
    endif()
    get_target_property(_v ${target} ${_prop})
    if(_v AND "${_v}" MATCHES "_GLIBCXX_USE_CXX11_ABI=([01])")
      list(APPEND _where "${target}'s ${_prop} sets _GLIBCXX_USE_CXX11_ABI=${CMAKE_MATCH_1}")
    endif()
  endforeach()
  get_target_property(_links ${target} LINK_LIBRARIES)
  foreach(_lib IN LISTS _links)
    if(TARGET "${_lib}" AND NOT _lib MATCHES "^Loom::")
      foreach(_prop INTERFACE_COMPILE_DEFINITIONS INTERFACE_COMPILE_OPTIONS)
        get_target_property(_v ${_lib} ${_prop})
        if(_v AND "${_v}" MATCHES "_GLIBCXX_USE_CXX11_ABI=([01])")
          list(APPEND _where "${_lib}'s ${_prop} sets _GLIBCXX_USE_CXX11_ABI=${CMAKE_MATCH_1}")
        endif()
      endforeach()
    endif()
  endforeach()
  set(${out} "${_where}" PARENT_SCOPE)
endfunction()

function(_loom_check_cxx_abi target)
  set(_want 1)
  if("${TORCH_CXX_FLAGS}" MATCHES "_GLIBCXX_USE_CXX11_ABI=0")   # a LibTorch built with the old ABI
    set(_want 0)
  endif()
  _loom_cxx_abi_flags(${target} _where)
  foreach(_w IN LISTS _where)
    if(NOT _w MATCHES "=${_want}$")
      message(FATAL_ERROR "loom_add_plugin(${target}): ${_w}, but LibTorch and loom use "
                          "_GLIBCXX_USE_CXX11_ABI=${_want}; the plugin would not link against LibTorch (and loom "
                          "refuses a library built with another C++ ABI). Remove that flag; the Loom::sdk target "
                          "brings LibTorch's own flags.")
    endif()
  endforeach()
endfunction()

function(loom_add_plugin target)
  cmake_parse_arguments(ARG "PRECOMPILE_SDK" "OUTPUT_DIR" "SOURCES;LINK" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "loom_add_plugin(${target}): SOURCES is required")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "loom_add_plugin(${target}): unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  # Deferred to the end of the directory; EVAL expands ${target} now (a deferred call's arguments are
  # otherwise expanded when it runs).
  cmake_language(EVAL CODE "cmake_language(DEFER CALL _loom_check_cxx_abi [[${target}]])")
  # Every plugin built in this project, for the `loom_runtime` target (loom + its plugins, no tests).
  set_property(GLOBAL APPEND PROPERTY LOOM_PLUGIN_TARGETS ${target})
  target_link_libraries(${target} PRIVATE Loom::sdk ${ARG_LINK})
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    DEFINE_SYMBOL "")
  # No undefined symbols left for load time: a missing one is a link error now, not a dlopen error later.
  target_link_options(${target} PRIVATE "LINKER:--no-undefined")
  if(ARG_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  elseif(DEFINED LOOM_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${LOOM_PLUGIN_OUTPUT_DIR})
  endif()
  if(TARGET loom_pch)
    # Inside Loom's tree (whose build type defaults to Release): reuse the shared precompiled header.
    # Its compile flags must stay identical to the plugin's, so no per-target flags are added here.
    target_precompile_headers(${target} REUSE_FROM loom_pch)
    # One translation unit per plugin (a unity build): each one loads the whole precompiled header and
    # instantiates LibTorch's inline code again, which costs more than most plugins' own code.
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 0)
  else()
    # Third party: optimised even when the project set no build type ($<CONFIG:> is true only then).
    target_compile_options(${target} PRIVATE "$<$<CONFIG:>:-O2>")
    if(ARG_PRECOMPILE_SDK)
      target_precompile_headers(${target} PRIVATE <loom/library.h>)
    endif()
  endif()
  if(DEFINED LOOM_INSTALL_PLUGIN_DIR AND LOOM_INSTALL_BUILTIN_PLUGINS)
    install(TARGETS ${target} LIBRARY DESTINATION ${LOOM_INSTALL_PLUGIN_DIR})
  endif()
endfunction()
