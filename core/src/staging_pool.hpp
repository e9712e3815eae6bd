// Aligned host buffers allocated once at start and leased for the hops that need them: bouncing misaligned
// disk transfers (read-modify-write for writes) and, on GPU builds, the disk -> pinned host -> GPU pipeline.
// Never allocating per request keeps the pinned footprint fixed and its failure at start-up.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace flexrt {

class StagingPool {
public:
    static constexpr uint64_t kAlignment = 4096;

    // `chunks` buffers of `chunk_bytes` (rounded up to kAlignment), page-locked when `pinned` (CUDA builds).
    // Throws OUT_OF_MEMORY naming the size.
    StagingPool(uint64_t chunk_bytes, unsigned chunks, bool pinned = false);
    ~StagingPool();
    StagingPool(const StagingPool&) = delete;
    StagingPool& operator=(const StagingPool&) = delete;

    class Lease {
    public:
        Lease(StagingPool* pool, std::byte* data) : pool_(pool), data_(data) {}
        Lease(Lease&& o) noexcept : pool_(o.pool_), data_(o.data_) { o.pool_ = nullptr; }
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (pool_) pool_->give_back(data_);
        }
        std::byte* data() const noexcept { return data_; }
        uint64_t bytes() const noexcept { return pool_->chunk_bytes_; }

    private:
        StagingPool* pool_;
        std::byte* data_;
    };

    // Blocks until a chunk is free. Thread-safe. A holder blocks for one lease at most: more only through
    // try_acquire, so two holders can never wait on each other.
    Lease acquire();
    // A free chunk if there is one, without waiting.
    std::optional<Lease> try_acquire();
    uint64_t chunk_bytes() const noexcept { return chunk_bytes_; }
    uint64_t total_bytes() const noexcept { return chunk_bytes_ * all_.size(); }
    unsigned chunks() const noexcept { return static_cast<unsigned>(all_.size()); }
    bool pinned() const noexcept { return pinned_; }

private:
    void give_back(std::byte* p);
    void release_all() noexcept;
    uint64_t chunk_bytes_;
    bool pinned_;
    std::vector<std::byte*> all_, free_;
    std::mutex m_;
    std::condition_variable cv_;
};

}  // namespace flexrt
