// Builds without CUDA: there is no GPU to upload to.
#include "gpu_upload.hpp"

namespace flexrt {

bool gpu_available() noexcept { return false; }
uint64_t gpu_free_memory() noexcept { return 0; }
std::string gpu_name() { return ""; }
GpuMemory::GpuMemory(uint64_t) { FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED, "this build has no CUDA (FLEXRT_WITH_CUDA)"); }
GpuMemory::~GpuMemory() = default;
void GpuMemory::copy_to_host(void*, uint64_t, uint64_t) const {}
Status gpu_copy(std::byte*, MemoryKind, const std::byte*, MemoryKind, uint64_t) {
    return {FLEXRT_STATUS_UNSUPPORTED, "this build has no CUDA (FLEXRT_WITH_CUDA)"};
}
Status gpu_copy_relayed(std::byte*, MemoryKind, const std::byte*, MemoryKind, uint64_t, StagingPool&) {
    return {FLEXRT_STATUS_UNSUPPORTED, "this build has no CUDA (FLEXRT_WITH_CUDA)"};
}
Status read_to_gpu(DiskBuffer&, uint64_t, uint64_t, std::byte*, StagingPool&, unsigned) {
    return {FLEXRT_STATUS_UNSUPPORTED, "this build has no CUDA (FLEXRT_WITH_CUDA)"};
}
Status write_from_gpu(const std::byte*, DiskBuffer&, uint64_t, uint64_t, StagingPool&, unsigned) {
    return {FLEXRT_STATUS_UNSUPPORTED, "this build has no CUDA (FLEXRT_WITH_CUDA)"};
}

}  // namespace flexrt
