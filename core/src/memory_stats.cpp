#include "memory_stats.hpp"

#include <fstream>
#include <string>

namespace flexrt {

uint64_t peak_host_memory_bytes() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // reported in kB
    return 0;
}

}  // namespace flexrt
