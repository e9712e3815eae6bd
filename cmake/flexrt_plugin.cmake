# flexrt_add_plugin(<name> KIND <storage|compress|schedule> SOURCES ... [OUTPUT_DIR dir])
# Builds libflexrt-<kind>-<name>.so: a MODULE that sees only the public SDK headers, exports only
# flexrt_plugin_list (hidden visibility), and lands in the build tree's plugin directory.
function(flexrt_add_plugin name)
  cmake_parse_arguments(P "" "KIND;OUTPUT_DIR" "SOURCES" ${ARGN})
  if(NOT P_KIND MATCHES "^(storage|compress|schedule)$")
    message(FATAL_ERROR "flexrt_add_plugin(${name}): KIND must be storage, compress or schedule")
  endif()
  if(NOT P_OUTPUT_DIR)
    set(P_OUTPUT_DIR ${FLEXRT_PLUGIN_BUILD_DIR})
  endif()
  set(target flexrt-${P_KIND}-${name})
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE flexrt_sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX "lib" OUTPUT_NAME ${target}
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIR})
  flexrt_warnings(${target})
  if(P_OUTPUT_DIR STREQUAL FLEXRT_PLUGIN_BUILD_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/flexrt/plugins)
  endif()
endfunction()
