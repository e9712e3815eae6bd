// `flexrt calibrate`: measures this machine's rates for the planner - the compute
// device's GEMM and memory bandwidth, pinned host <-> GPU copies, the disk's read and write through the
// configured storage plugin, the host's decode attention - and the memory of each tier.
#pragma once

#include "core/src/config.hpp"
#include "hardware_profile.hpp"

#include <functional>
#include <string>

namespace flexrt::planner {

// `cfg` gives the storage plugin, its options, the offload dir (where the disk is measured) and the plugin
// path; `use_gpu` picks the compute device measured. `disk_bytes`: the file written and read back.
HardwareProfile calibrate(const Config& cfg, bool use_gpu, uint64_t disk_bytes, const std::function<void(const std::string&)>& say);

}  // namespace flexrt::planner
