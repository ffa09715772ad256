# `cmake --install` lays out what a third-party plugin author needs:
#   bin/loom, lib/loom/plugins/*.so, include/loom/*.h, lib/libloom_io.a (Loom::io),
#   lib/cmake/Loom/{LoomConfig,LoomPlugin,LoomTorch,LoomIoTargets}.cmake
include(CMakePackageConfigHelpers)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/sdk/include/loom DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(LOOM_CMAKE_INSTALL_DIR lib/cmake/Loom)
install(TARGETS loom_io EXPORT LoomIoTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT LoomIoTargets NAMESPACE Loom:: DESTINATION ${LOOM_CMAKE_INSTALL_DIR})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/LoomConfig.cmake.in ${CMAKE_BINARY_DIR}/LoomConfig.cmake
  INSTALL_DESTINATION ${LOOM_CMAKE_INSTALL_DIR} PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/LoomConfigVersion.cmake COMPATIBILITY ExactVersion)
install(FILES ${CMAKE_BINARY_DIR}/LoomConfig.cmake ${CMAKE_BINARY_DIR}/LoomConfigVersion.cmake
              ${CMAKE_SOURCE_DIR}/cmake/LoomPlugin.cmake ${CMAKE_SOURCE_DIR}/cmake/LoomTorch.cmake
        DESTINATION ${LOOM_CMAKE_INSTALL_DIR})
