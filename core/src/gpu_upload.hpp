// The disk -> pinned host -> GPU hop: a file's bytes read by the storage plugin into pinned staging chunks,
// each copied to device memory asynchronously while the next chunks are read, so the disk never waits
// for the link. CUDA builds only; elsewhere every call reports UNSUPPORTED.
#pragma once

#include "device.hpp"
#include "staging_pool.hpp"

#include <flexrt/status.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace flexrt {

bool gpu_available() noexcept;
// Free memory of the current GPU in bytes (0 without one).
uint64_t gpu_free_memory() noexcept;
// The current GPU's name ("" without one).
std::string gpu_name();

// Device memory for benchmarks and tests (cudaMalloc / cudaFree).
class GpuMemory {
public:
    explicit GpuMemory(uint64_t bytes);
    ~GpuMemory();
    GpuMemory(const GpuMemory&) = delete;
    GpuMemory& operator=(const GpuMemory&) = delete;
    std::byte* data() const noexcept { return data_; }
    uint64_t bytes() const noexcept { return bytes_; }
    // Copies device bytes back to host memory (checks).
    void copy_to_host(void* dst, uint64_t offset, uint64_t bytes) const;

private:
    std::byte* data_ = nullptr;
    uint64_t bytes_ = 0;
};

// Copies `bytes` between device memory and host or device memory: cudaMemcpyAsync on the calling thread's
// own stream, then waits for it (the caller is a transfer-engine worker; the scheduler's thread never
// blocks on it). `*_kind` says which side is device memory.
Status gpu_copy(std::byte* dst, MemoryKind dst_kind, const std::byte* src, MemoryKind src_kind, uint64_t bytes);

// The same between pageable host memory and the GPU, relayed through `pinned` chunks (double-buffered):
// the driver would otherwise stage pageable copies itself, one small synchronous piece at a time.
Status gpu_copy_relayed(std::byte* dst, MemoryKind dst_kind, const std::byte* src, MemoryKind src_kind, uint64_t bytes,
                        StagingPool& pinned);

// Reads [offset, offset + bytes) of `src` into `dst` (device memory) through `pinned` (a pinned pool),
// keeping up to `depth` chunk reads in flight. Any offset: reads cover the aligned range around it.
Status read_to_gpu(DiskBuffer& src, uint64_t offset, uint64_t bytes, std::byte* dst, StagingPool& pinned, unsigned depth);

// The way back (the KV cache's): device memory `src` to [offset, offset + bytes) of `dst`, each chunk copied
// to pinned staging and written while the next chunks are copied. An unaligned offset or tail goes through
// the core's read-modify-write.
Status write_from_gpu(const std::byte* src, DiskBuffer& dst, uint64_t offset, uint64_t bytes, StagingPool& pinned, unsigned depth);

}  // namespace flexrt
