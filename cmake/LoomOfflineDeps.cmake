# Offline third-party dependencies, used only with -DLOOM_DEPS_DIR=<dir>: a folder made by
# scripts/gpu-deps.sh (headers of toml++, spdlog, fmt, CLI11, nlohmann-json, zlib, libjpeg, libpng and the
# Boost subset Boost.DLL uses; a static libz.a, shared libjpeg and libpng; GoogleTest's sources). It defines the same target names the
# find_package() calls in the top-level CMakeLists.txt and tests/CMakeLists.txt would, which then skip
# themselves. For a machine with a compiler, CMake and Python + torch but no -dev packages and no
# network (the GPU check: scripts/gpu-check.sh). Without LOOM_DEPS_DIR this file does nothing.
#
# Everything is header-only where the library allows it: toml++ (TOML_HEADER_ONLY=1), spdlog
# (SPDLOG_HEADER_ONLY + SPDLOG_FMT_EXTERNAL) over fmt (FMT_HEADER_ONLY). Each library has its own include
# root, so fmt's headers reach only spdlog's users (host/cli/log.cpp), never a translation unit that also
# sees LibTorch's bundled fmt.
if(NOT LOOM_DEPS_DIR)
  return()
endif()

get_filename_component(LOOM_DEPS_DIR "${LOOM_DEPS_DIR}" ABSOLUTE)
if(NOT EXISTS "${LOOM_DEPS_DIR}/include/toml/toml++/toml.h" OR NOT EXISTS "${LOOM_DEPS_DIR}/lib/libz.a")
  message(FATAL_ERROR "Loom: LOOM_DEPS_DIR=${LOOM_DEPS_DIR} is not a folder made by scripts/gpu-deps.sh "
                      "(no include/toml/toml++/toml.h or lib/libz.a)")
endif()
message(STATUS "Loom: offline dependencies from ${LOOM_DEPS_DIR}")
set(_loom_inc "${LOOM_DEPS_DIR}/include")

find_package(Threads REQUIRED)

# Interface targets are IMPORTED (so their include roots are -isystem, like /usr/include) and GLOBAL
# (visible from every directory, like a find_package() call at the top level).
function(_loom_offline_iface target include_dir)
  if(TARGET ${target})
    return()
  endif()
  add_library(${target} INTERFACE IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${include_dir}")
  if(ARGN)
    set_target_properties(${target} PROPERTIES INTERFACE_COMPILE_DEFINITIONS "${ARGN}")
  endif()
endfunction()

_loom_offline_iface(tomlplusplus::tomlplusplus "${_loom_inc}/toml" TOML_HEADER_ONLY=1)
_loom_offline_iface(fmt::fmt-header-only "${_loom_inc}/fmt" FMT_HEADER_ONLY=1)
_loom_offline_iface(spdlog::spdlog "${_loom_inc}/spdlog" SPDLOG_HEADER_ONLY SPDLOG_FMT_EXTERNAL)
set_property(TARGET spdlog::spdlog APPEND PROPERTY INTERFACE_LINK_LIBRARIES fmt::fmt-header-only Threads::Threads)
_loom_offline_iface(CLI11::CLI11 "${_loom_inc}/cli11")
_loom_offline_iface(nlohmann_json::nlohmann_json "${_loom_inc}/json")
_loom_offline_iface(Boost::headers "${_loom_inc}/boost" BOOST_ALL_NO_LIB)
if(NOT TARGET Boost::boost)
  add_library(Boost::boost INTERFACE IMPORTED GLOBAL)
  set_target_properties(Boost::boost PROPERTIES INTERFACE_LINK_LIBRARIES Boost::headers)
endif()

# zlib: static and position-independent; its symbols stay local to whatever links it.
if(NOT TARGET ZLIB::ZLIB)
  add_library(ZLIB::ZLIB STATIC IMPORTED GLOBAL)
  set_target_properties(ZLIB::ZLIB PROPERTIES
    IMPORTED_LOCATION "${LOOM_DEPS_DIR}/lib/libz.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_loom_inc}/zlib"
    INTERFACE_LINK_OPTIONS "LINKER:--exclude-libs,libz.a")
endif()
set(ZLIB_FOUND TRUE)
set(ZLIB_INCLUDE_DIRS "${_loom_inc}/zlib")
set(ZLIB_LIBRARIES ZLIB::ZLIB)

# libjpeg-turbo and libpng (the image-folder dataset and its tests): shared libraries, because Debian's
# static archives of them are not position-independent; the build tree's RUNPATH finds them.
foreach(_loom_lib "JPEG;jpeg;libjpeg.so.62" "PNG;png;libpng16.so.16")
  list(GET _loom_lib 0 _loom_pkg)
  list(GET _loom_lib 1 _loom_dir)
  list(GET _loom_lib 2 _loom_file)
  if(NOT TARGET ${_loom_pkg}::${_loom_pkg} AND EXISTS "${LOOM_DEPS_DIR}/lib/${_loom_file}")
    add_library(${_loom_pkg}::${_loom_pkg} SHARED IMPORTED GLOBAL)
    set_target_properties(${_loom_pkg}::${_loom_pkg} PROPERTIES
      IMPORTED_LOCATION "${LOOM_DEPS_DIR}/lib/${_loom_file}"
      IMPORTED_SONAME "${_loom_file}"
      INTERFACE_INCLUDE_DIRECTORIES "${_loom_inc}/${_loom_dir}")
  endif()
endforeach()

# GoogleTest from its sources: GTest::gtest and GTest::gtest_main (aliases googletest defines itself).
# Built only when the tests are (EXCLUDE_FROM_ALL), never installed, without gmock (Loom doesn't use it).
if((NOT DEFINED BUILD_TESTING OR BUILD_TESTING) AND NOT TARGET GTest::gtest
   AND EXISTS "${LOOM_DEPS_DIR}/src/googletest/CMakeLists.txt")
  set(INSTALL_GTEST OFF CACHE BOOL "Loom: offline GoogleTest is never installed" FORCE)
  set(BUILD_GMOCK OFF CACHE BOOL "Loom: offline GoogleTest without gmock" FORCE)
  add_subdirectory("${LOOM_DEPS_DIR}/src/googletest" "${CMAKE_BINARY_DIR}/_deps/googletest" EXCLUDE_FROM_ALL)
  if(NOT TARGET GTest::gtest_main)
    message(FATAL_ERROR "Loom: ${LOOM_DEPS_DIR}/src/googletest did not define GTest::gtest_main")
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND TARGET gtest)
    target_compile_options(gtest PRIVATE -Wno-restrict)   # GCC 12's false positive in gtest.cc at -O3
  endif()
  set(GTest_FOUND TRUE)
  set(GTEST_FOUND TRUE)
endif()

# torch/headeronly/version.h (TORCH_VERSION) exists in recent wheels only; an older LibTorch has the same
# macros in torch/version.h. Bridge the gap with a one-line forwarding header, offline builds only.
if(TARGET loom_torch_iface AND DEFINED TORCH_INSTALL_PREFIX
   AND NOT EXISTS "${TORCH_INSTALL_PREFIX}/include/torch/headeronly/version.h"
   AND EXISTS "${TORCH_INSTALL_PREFIX}/include/torch/csrc/api/include/torch/version.h")
  set(_loom_compat "${CMAKE_BINARY_DIR}/loom-torch-compat")
  file(WRITE "${_loom_compat}/torch/headeronly/version.h"
       "#pragma once\n// Written by cmake/LoomOfflineDeps.cmake: this LibTorch predates torch/headeronly/version.h.\n#include <torch/version.h>\n")
  target_include_directories(loom_torch_iface SYSTEM INTERFACE "$<BUILD_INTERFACE:${_loom_compat}>")
  message(STATUS "Loom: LibTorch ${Torch_VERSION} has no torch/headeronly/version.h; forwarding to torch/version.h")
endif()

unset(_loom_inc)
