# The tree's own plugins: flexrt_add_plugin() (cmake/flexrt_plugin_sdk.cmake, the helper the SDK installs) plus
# warnings as errors, the build tree's plugin directory unless OUTPUT_DIR says otherwise, and install.
function(flexrt_plugin_hook target output_dir)
  flexrt_warnings(${target})
  if(NOT output_dir)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${FLEXRT_PLUGIN_BUILD_DIR})
    install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/flexrt/plugins)
  endif()
endfunction()
include(${CMAKE_CURRENT_LIST_DIR}/flexrt_plugin_sdk.cmake)
