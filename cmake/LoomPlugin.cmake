# loom_add_plugin(<target> SOURCES <src>... [LINK <libs>...] [OUTPUT_DIR <dir>])
#
# Builds one Loom plugin library: a MODULE (dlopen-only) shared library linked against the SDK, with
# hidden symbols (only the entry point and its info record are exported). Loom's own plugins and
# third-party plugins use this same helper.
function(loom_add_plugin target)
  cmake_parse_arguments(ARG "" "OUTPUT_DIR" "SOURCES;LINK" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "loom_add_plugin(${target}): SOURCES is required")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
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
  # Inside Loom's tree, reuse the shared precompiled header.
  if(TARGET loom_pch)
    target_precompile_headers(${target} REUSE_FROM loom_pch)
  endif()
  if(DEFINED LOOM_INSTALL_PLUGIN_DIR AND LOOM_INSTALL_BUILTIN_PLUGINS)
    install(TARGETS ${target} LIBRARY DESTINATION ${LOOM_INSTALL_PLUGIN_DIR})
  endif()
endfunction()
