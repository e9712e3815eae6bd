// Process memory figures for the run summary.
#pragma once

#include <cstdint>

namespace flexrt {

// Peak resident set size of this process (VmHWM), in bytes; 0 if unknown.
uint64_t peak_host_memory_bytes();

}  // namespace flexrt
