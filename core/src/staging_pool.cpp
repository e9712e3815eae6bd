#include "staging_pool.hpp"

#include "pinned_memory.hpp"

#include <flexrt/status.hpp>

#include <cstdlib>
#include <string>

namespace flexrt {

StagingPool::StagingPool(uint64_t chunk_bytes, unsigned chunks, bool pinned)
    : chunk_bytes_((chunk_bytes + kAlignment - 1) / kAlignment * kAlignment), pinned_(pinned) {
    FLEXRT_ASSERT(chunks > 0 && chunk_bytes_ > 0);
    try {
        for (unsigned i = 0; i < chunks; ++i) {
            // pinned_alloc returns page-aligned memory, which satisfies kAlignment.
            auto* p = static_cast<std::byte*>(pinned ? pinned_alloc(chunk_bytes_) : std::aligned_alloc(kAlignment, chunk_bytes_));
            if (!p)
                FLEXRT_THROW(FLEXRT_STATUS_OUT_OF_MEMORY, "cannot allocate the staging pool: " + std::to_string(chunks) + " x " +
                                                              std::to_string(chunk_bytes_) + " bytes (runtime.staging_mib)");
            all_.push_back(p);
        }
    } catch (...) {
        release_all();
        throw;
    }
    free_ = all_;
}

StagingPool::~StagingPool() { release_all(); }

void StagingPool::release_all() noexcept {
    for (auto* p : all_) pinned_ ? pinned_free(p) : std::free(p);
    all_.clear();
}

StagingPool::Lease StagingPool::acquire() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    std::byte* p = free_.back();
    free_.pop_back();
    return Lease(this, p);
}

std::optional<StagingPool::Lease> StagingPool::try_acquire() {
    std::lock_guard lock(m_);
    if (free_.empty()) return std::nullopt;
    std::byte* p = free_.back();
    free_.pop_back();
    return Lease(this, p);
}

void StagingPool::give_back(std::byte* p) {
    {
        std::lock_guard lock(m_);
        free_.push_back(p);
    }
    cv_.notify_one();
}

}  // namespace flexrt
