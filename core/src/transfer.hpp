// The transfer engine: asynchronous copies between tiers (compute, host, disk) with completion events.
// Workers are a Boost.Asio thread_pool; a copy starts when the events it depends on have completed,
// without blocking a worker while it waits.
#pragma once

#include "device.hpp"
#include "pinned_memory.hpp"
#include "staging_pool.hpp"

#include <flexrt/status.hpp>

#include <boost/asio/thread_pool.hpp>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace flexrt {

// Completion of an asynchronous operation. Copyable handle; a default Event is already complete (OK).
class Event {
public:
    Event() = default;
    static Event pending();
    static Event failed(Status s);

    bool ready() const;
    // Blocks until complete; returns the operation's status.
    Status wait() const;
    // Runs `fn(status)` when complete: at once on this thread if already complete, else on the completing
    // thread. `fn` must not block.
    void then(std::function<void(const Status&)> fn) const;
    // Completes a pending event (called once by its producer).
    void complete(Status s) const;

private:
    struct State {
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
        Status status;
        std::vector<std::function<void(const Status&)>> continuations;
    };
    std::shared_ptr<State> state_;
};

// A byte range of a buffer on any tier.
struct View {
    Buffer* buffer = nullptr;
    uint64_t offset = 0;
    uint64_t bytes = 0;
};

class TransferEngine {
public:
    static constexpr uint64_t kStagingChunk = 16ull << 20;  // the disk reaches its O_DIRECT rate at 16 MiB requests (BENCH.md)
    // `threads` workers; a staging pool of `staging_bytes` (at least two chunks), allocated now.
    // `pinned`: the staging pool in pinned memory (where there is a GPU; off, this never calls CUDA).
    explicit TransferEngine(unsigned threads, uint64_t staging_bytes = 16ull << 20, bool pinned = pinned_memory_available());
    ~TransferEngine();  // waits for every transfer in flight

    // Copies src to dst (same length) once every event in `after` completed OK; if one failed, the copy
    // does not run and its event carries that failure. Buffers are borrowed until the event completes.
    Event copy(View dst, View src, std::vector<Event> after = {});

    // Runs `fn` on a worker after `after`, like copy(). For work that belongs with transfers.
    Event run(std::function<Status()> fn, std::vector<Event> after = {});

    // Blocks until every operation started so far has completed; returns the first failure since the
    // last call (OK if none).
    Status wait_all();

private:
    Event start(std::function<Status()> fn, std::vector<Event> after);
    boost::asio::thread_pool pool_;
    StagingPool staging_;
    std::mutex m_;
    std::condition_variable idle_;
    uint64_t in_flight_ = 0;
    Status first_failure_;
};

// The copy itself, synchronous, for any pair of tiers; used by the workers and by tests. Misaligned disk
// transfers bounce through `pool` (or a temporary buffer when null).
Status copy_now(View dst, View src, StagingPool* pool = nullptr);

// Synchronous I/O between a disk-tier buffer and plain host memory (headers, staging).
Status disk_read(DiskBuffer& file, uint64_t offset, std::byte* mem, uint64_t bytes, StagingPool* pool = nullptr);
Status disk_write(DiskBuffer& file, uint64_t offset, const std::byte* mem, uint64_t bytes, StagingPool* pool = nullptr);

}  // namespace flexrt
