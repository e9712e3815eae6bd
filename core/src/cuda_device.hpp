// The GPU as the compute tier: one cudaMalloc'd pool per run, sized up front from the plan, and buffers
// carved from it (first fit, neighbours merged on free). Never managed memory. Without CUDA, constructing
// one reports UNSUPPORTED.
#pragma once

#include "device.hpp"

#include <memory>

namespace flexrt {

class CudaDevice final : public IDevice {
public:
    // Throws OUT_OF_MEMORY naming the size asked for and the memory the GPU has free.
    explicit CudaDevice(uint64_t pool_bytes, int device = 0);
    ~CudaDevice() override;
    TierKind kind() const noexcept override { return TierKind::compute; }
    MemoryKind memory() const noexcept override { return MemoryKind::device; }
    std::string name() const override;
    // Throws OUT_OF_MEMORY naming `purpose`, the pool's size, what is used and the largest free block.
    std::unique_ptr<Buffer> allocate(uint64_t bytes, const std::string& purpose) override;
    uint64_t pool_bytes() const noexcept;

    struct Impl;

private:
    friend class CudaBuffer;
    void give_back(uint64_t offset, uint64_t reserved, uint64_t bytes) noexcept;
    std::unique_ptr<Impl> impl_;
};

}  // namespace flexrt
