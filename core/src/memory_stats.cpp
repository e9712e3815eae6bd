#include "memory_stats.hpp"

#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace flexrt {

uint64_t peak_host_memory_bytes() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // reported in kB
    return 0;
}

uint64_t host_available_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    uint64_t kib = 0;
    std::string unit;
    while (in >> key >> kib >> unit)
        if (key == "MemAvailable:") return kib * 1024;
    return 0;
}

uint64_t disk_free_bytes(const std::string& path) {
    std::filesystem::path p = std::filesystem::absolute(path);
    while (!p.empty() && !std::filesystem::exists(p) && p != p.parent_path()) p = p.parent_path();
    struct statvfs s {};
    if (statvfs(p.c_str(), &s) != 0) return 0;
    return static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
}

}  // namespace flexrt
