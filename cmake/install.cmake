# `cmake --install build [--prefix P]`: the CLI, libtaia.so with its one public header
# (include/taia/taia.h), a CMake package (find_package(taia CONFIG) -> taia::taia) and a pkg-config
# file (pkg-config --cflags --libs taia). The internals (src/) are not installed.
include(CMakePackageConfigHelpers)

install(TARGETS taia_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS taia_shared EXPORT taiaTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/taia/taia.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/taia)

set(TAIA_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/taia)
install(EXPORT taiaTargets NAMESPACE taia:: FILE taiaTargets.cmake DESTINATION ${TAIA_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/taiaConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/taiaConfig.cmake INSTALL_DESTINATION ${TAIA_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/taiaConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/taiaConfig.cmake ${PROJECT_BINARY_DIR}/taiaConfigVersion.cmake
        DESTINATION ${TAIA_CMAKE_DIR})

# The .pc file finds the prefix from where it lies, so `cmake --install --prefix P` anywhere works.
file(RELATIVE_PATH TAIA_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(${PROJECT_SOURCE_DIR}/cmake/taia.pc.in ${PROJECT_BINARY_DIR}/taia.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/taia.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
