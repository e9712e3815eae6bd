// Builds without CUDA: no pinned memory (the staging pool uses aligned pageable memory instead).
#include "pinned_memory.hpp"

#include <flexrt/status.hpp>

namespace flexrt {

bool pinned_memory_available() noexcept { return false; }
void* pinned_alloc(uint64_t) { FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED, "pinned memory needs a CUDA build (FLEXRT_WITH_CUDA)"); }
void pinned_free(void*) noexcept {}

}  // namespace flexrt
