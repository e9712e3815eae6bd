#include "core/src/pinned_memory.hpp"

#include "cuda_check.hpp"

namespace flexrt {

bool pinned_memory_available() noexcept {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

void* pinned_alloc(uint64_t bytes) {
    void* p = nullptr;
    const cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
    if (e != cudaSuccess)
        FLEXRT_THROW(FLEXRT_STATUS_OUT_OF_MEMORY, "cannot pin " + std::to_string(bytes) + " bytes of host memory (" +
                                                      cudaGetErrorString(e) + "; check host RAM and `ulimit -l`)");
    return p;
}

void pinned_free(void* p) noexcept {
    if (p) cudaFreeHost(p);
}

}  // namespace flexrt
