// What the planner knows of a machine: the rates `flexrt calibrate` measured (compute, memory, the links
// between the tiers, the disk through the storage plugin) and the memory each tier has. Saved as TOML and
// reused until the machine's fingerprint (CPU, host memory, GPU, the offload dir's file system) changes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace flexrt::planner {

struct HardwareProfile {
    std::string fingerprint;  // machine_fingerprint() of the machine it was measured on
    std::string storage;      // the storage plugin the disk rates were measured through
    bool gpu = false;         // the compute device is a GPU (else the CPU path: host memory is its memory)
    std::string gpu_name;
    uint64_t gpu_memory = 0;   // bytes the compute device can hold (a GPU's free memory at calibration)
    uint64_t host_memory = 0;  // MemAvailable at calibration
    uint64_t disk_free = 0;    // free bytes under the offload dir
    // Rates, per second. gemm: FLOP/s of the compute device's prefill-sized GEMMs (fp16 on a GPU); mem: bytes
    // the compute device's memory moves (read + write) in a copy; h2d/d2h: pinned host <-> GPU (0 without a
    // GPU); disk: through the storage plugin, 16 MiB requests; cpu_attention: KV bytes the host's decode
    // attention reads (cpu_cache_compute, and every attention on the CPU path).
    double gemm_flops = 0, mem_bps = 0, h2d_bps = 0, d2h_bps = 0, disk_read_bps = 0, disk_write_bps = 0, cpu_attention_bps = 0;
    double layer_overhead_s = 0;  // fixed cost of one layer of one batch (launches, synchronization)
    // The engine's own layers against the rates above, from a short real run in calibration: the fraction of
    // the predicted compute speed its prefill and decode layers reach (kernels between the GEMMs, clocks under
    // load, attention kernels slower than the GEMMs). 1 until fitted.
    double prefill_efficiency = 1, decode_efficiency = 1;

    std::string to_toml() const;
    // Throws naming the file and the key when it is not a profile this flexrt wrote.
    static HardwareProfile load(const std::filesystem::path& file);
    // Written under a temporary name and renamed: never a half-written profile.
    void save(const std::filesystem::path& file) const;
};

// CPU model and count, host memory, GPU name and memory (or "no GPU"), and the file system holding `offload_dir`.
std::string machine_fingerprint(const std::string& offload_dir);

// Where a profile is kept by default: $FLEXRT_PROFILE, else $XDG_CACHE_HOME/flexrt, else ~/.cache/flexrt.
std::filesystem::path default_profile_path();

}  // namespace flexrt::planner
