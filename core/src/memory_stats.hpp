// Memory figures: the process's peak for the run summary, and what the host and the disk have free for the
// memory plan and the planner.
#pragma once

#include <cstdint>
#include <string>

namespace flexrt {

// Peak resident set size of this process (VmHWM), in bytes; 0 if unknown.
uint64_t peak_host_memory_bytes();

// Host memory the kernel says is available (/proc/meminfo MemAvailable), and the free bytes of the file
// system holding `path` (or its nearest existing parent).
uint64_t host_available_bytes();
uint64_t disk_free_bytes(const std::string& path);

}  // namespace flexrt
