# Finds LibTorch from the PyPI torch wheel and defines Loom::torch.
# Used by Loom's own build and, installed, by third-party plugin builds (LoomConfig.cmake).
if(TARGET Loom::torch)
  return()
endif()

if(NOT Torch_DIR)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import torch; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _loom_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _loom_rc)
  if(NOT _loom_rc EQUAL 0)
    message(FATAL_ERROR "Loom: cannot import torch with ${Python3_EXECUTABLE}. Run scripts/setup.sh "
                        "(it installs the pinned torch wheel), or set Torch_DIR.")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_loom_torch_prefix}")
endif()
# The wheel is CUDA-enabled: LibTorch's config wants the toolkit, which lives in /usr/local/cuda here.
if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
if(NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")   # only used if CUDA sources are added; silences auto-detection
endif()
find_package(Torch REQUIRED)

# libtorch_cuda needs the wheel's own NCCL/cuDNN/cuBLAS (site-packages/nvidia/*/lib, found at run time
# through its RUNPATH). Point the linker at the same copies, never at /usr/local/cuda's older ones.
get_filename_component(_loom_site "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
file(GLOB _loom_nv_libs LIST_DIRECTORIES true "${_loom_site}/nvidia/*/lib")
set(_loom_rpath_link "")
foreach(_d IN LISTS _loom_nv_libs)
  string(APPEND _loom_rpath_link ",-rpath-link,${_d}")
endforeach()

add_library(loom_torch_iface INTERFACE)
add_library(Loom::torch ALIAS loom_torch_iface)
target_link_libraries(loom_torch_iface INTERFACE torch)
# --as-needed keeps /usr/local/cuda's libnvrtc out of our binaries' NEEDED list (torch's own libraries
# bring the wheel's copy); torch's target already forces libtorch_cuda in with --no-as-needed.
target_link_options(loom_torch_iface INTERFACE "LINKER:--as-needed")
if(_loom_rpath_link)
  target_link_options(loom_torch_iface INTERFACE "-Wl${_loom_rpath_link}")
endif()
set(LOOM_TORCH_VERSION "${Torch_VERSION}")
