# flexrt_add_plugin(<name> KIND <storage|compress|schedule> SOURCES ... [OUTPUT_DIR dir])
# Builds libflexrt-<kind>-<name>.so: a MODULE that sees only the public SDK headers (flexrt::sdk), exports only
# flexrt_plugin_list (hidden visibility). Installed with the SDK (find_package(flexrt)) for plugins built
# outside this tree; the tree's own plugins use it too, through cmake/flexrt_plugin.cmake's hook.
function(flexrt_add_plugin name)
  cmake_parse_arguments(P "" "KIND;OUTPUT_DIR" "SOURCES" ${ARGN})
  if(NOT P_KIND MATCHES "^(storage|compress|schedule)$")
    message(FATAL_ERROR "flexrt_add_plugin(${name}): KIND must be storage, compress or schedule")
  endif()
  set(target flexrt-${P_KIND}-${name})
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE flexrt::sdk)
  target_compile_features(${target} PRIVATE cxx_std_20)
  set_target_properties(${target} PROPERTIES PREFIX "lib" OUTPUT_NAME ${target} CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  if(P_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIR})
  endif()
  if(COMMAND flexrt_plugin_hook)  # the flexrt tree: warnings as errors, the build's plugin dir, install
    flexrt_plugin_hook(${target} "${P_OUTPUT_DIR}")
  endif()
endfunction()
