// Page-locked host memory: what the GPU's copy engines read at full PCIe speed. cudaHostAlloc on CUDA
// builds; without CUDA there is none to have (the CPU path needs none).
#pragma once

#include <cstdint>

namespace flexrt {

// True when this build can pin memory and a GPU is present.
bool pinned_memory_available() noexcept;
// Throws OUT_OF_MEMORY naming the size (RLIMIT_MEMLOCK or host RAM), or UNSUPPORTED without CUDA.
void* pinned_alloc(uint64_t bytes);
void pinned_free(void* p) noexcept;

}  // namespace flexrt
