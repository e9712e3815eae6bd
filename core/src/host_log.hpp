// The host side of flexrt_host: where plugins send their log lines and error details.
#pragma once

#include <flexrt/abi.h>

#include <string>

namespace flexrt {

// The flexrt_host handed to every plugin's create().
const flexrt_host* plugin_host() noexcept;

// The last ERROR message a plugin logged on the calling thread, cleared by the call. Empty if none.
std::string take_last_plugin_error();

// Sets the minimum level printed to stderr (default WARN); ERROR lines are always kept for the caller.
void set_plugin_log_level(flexrt_log_level level) noexcept;

}  // namespace flexrt
