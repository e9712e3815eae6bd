#include "transfer.hpp"

#include "trace.hpp"

#include <cstdio>

#include "gpu_upload.hpp"
#include "host_log.hpp"
#include "pinned_memory.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace flexrt {

// --- events ---------------------------------------------------------------------------------------

Event Event::pending() {
    Event e;
    e.state_ = std::make_shared<State>();
    return e;
}

Event Event::failed(Status s) {
    Event e = pending();
    e.complete(std::move(s));
    return e;
}

bool Event::ready() const {
    if (!state_) return true;
    std::lock_guard lock(state_->m);
    return state_->done;
}

Status Event::wait() const {
    if (!state_) return Status::ok();
    std::unique_lock lock(state_->m);
    state_->cv.wait(lock, [&] { return state_->done; });
    return state_->status;
}

void Event::then(std::function<void(const Status&)> fn) const {
    if (!state_) return fn(Status::ok());
    std::unique_lock lock(state_->m);
    if (state_->done) {
        Status s = state_->status;
        lock.unlock();
        return fn(s);
    }
    state_->continuations.push_back(std::move(fn));
}

void Event::complete(Status s) const {
    FLEXRT_ASSERT(state_);
    std::vector<std::function<void(const Status&)>> conts;
    {
        std::lock_guard lock(state_->m);
        FLEXRT_ASSERT(!state_->done);
        state_->done = true;
        state_->status = std::move(s);
        conts.swap(state_->continuations);
    }
    state_->cv.notify_all();
    for (auto& c : conts) c(state_->status);
}

// --- copies ---------------------------------------------------------------------------------------

namespace {

constexpr uint64_t kChunk = 64ull << 20;  // one storage request: large enough to stream, small enough to retry

std::string io_where(const DiskBuffer& d, uint64_t offset, uint64_t bytes) {
    return d.path().string() + " at offset " + std::to_string(offset) + ", " + std::to_string(bytes) + " bytes";
}

uint64_t round_down(uint64_t x, uint64_t a) { return x / a * a; }
uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Submits aligned I/O in kChunk requests, all in flight at once, and checks every completion. A read may
// reach past the end of the file (aligned tails): only the bytes before the end must arrive.
Status submit_aligned(DiskBuffer& d, flexrt_io_op op, uint64_t offset, std::byte* mem, uint64_t bytes) {
    IStorage& st = d.storage();
    std::vector<flexrt_io_request> reqs;
    for (uint64_t done = 0; done < bytes; done += kChunk) {
        flexrt_io_request r{};
        r.struct_size = sizeof(r);
        r.op = op;
        r.file = d.file();
        r.offset = offset + done;
        r.bytes = std::min(kChunk, bytes - done);
        r.buffer = mem + done;
        reqs.push_back(r);
    }
    std::vector<flexrt_io_request*> ptrs;
    for (auto& r : reqs) ptrs.push_back(&r);
    const char* verb = op == FLEXRT_IO_OP_READ ? "reading " : "writing ";
    take_last_plugin_error();
    flexrt_status s = st.submit(ptrs.data(), static_cast<uint32_t>(ptrs.size()));
    if (s != FLEXRT_STATUS_OK) return {s, verb + io_where(d, offset, bytes) + ": " + take_last_plugin_error()};
    s = st.wait(ptrs.data(), static_cast<uint32_t>(ptrs.size()));
    if (s != FLEXRT_STATUS_OK) return {s, verb + io_where(d, offset, bytes) + ": wait failed: " + take_last_plugin_error()};
    for (const auto& r : reqs) {
        const uint64_t needed = op == FLEXRT_IO_OP_WRITE ? r.bytes : std::min(r.bytes, d.bytes() > r.offset ? d.bytes() - r.offset : 0);
        if (r.status != FLEXRT_STATUS_OK || r.bytes_done < needed) {
            std::string why = r.sys_errno ? errno_text(r.sys_errno)
                                          : std::string(flexrt_status_name(r.status)) + ", " + std::to_string(r.bytes_done) + " of " +
                                                std::to_string(needed) + " bytes transferred";
            return {r.status != FLEXRT_STATUS_OK ? r.status : FLEXRT_STATUS_IO_ERROR, verb + io_where(d, r.offset, r.bytes) + ": " + why};
        }
    }
    return Status::ok();
}

// Reads or writes `bytes` at `offset` of a disk buffer from/to host memory. Transfers the storage plugin
// cannot take as they are (offset, length or address not aligned) go through a staging buffer: reads of
// the aligned range that covers them, and read-modify-write for writes (serialised per file, since two
// writes may share a block).
Status disk_io(DiskBuffer& d, flexrt_io_op op, uint64_t offset, std::byte* mem, uint64_t bytes, StagingPool* pool) {
    const uint64_t align = std::max<uint64_t>(1, d.storage().required_alignment());
    if (offset % align == 0 && bytes % align == 0 && reinterpret_cast<uintptr_t>(mem) % align == 0)
        return submit_aligned(d, op, offset, mem, bytes);
    if (align > StagingPool::kAlignment || StagingPool::kAlignment % align)
        return {FLEXRT_STATUS_UNSUPPORTED, "the storage plugin needs " + std::to_string(align) +
                                               "-byte alignment, more than the staging pool's " + std::to_string(StagingPool::kAlignment)};
    std::optional<StagingPool> local;  // tools and tests without a transfer engine
    if (!pool) pool = &local.emplace(std::min<uint64_t>(round_up(bytes, align) + 2 * align, 8ull << 20), 1);
    StagingPool::Lease lease = pool->acquire();
    const uint64_t window = round_down(lease.bytes(), align);
    std::unique_lock<std::mutex> rmw;
    if (op == FLEXRT_IO_OP_WRITE) rmw = std::unique_lock<std::mutex>(d.rmw_mutex());
    const uint64_t end = offset + bytes;
    for (uint64_t pos = round_down(offset, align); pos < end; pos += window) {
        const uint64_t wend = std::min(pos + window, round_up(end, align));
        const uint64_t a = std::max(pos, offset), b = std::min(wend, end);
        std::byte* stage = lease.data();
        if (op == FLEXRT_IO_OP_READ) {
            Status s = submit_aligned(d, op, pos, stage, wend - pos);
            if (!s.is_ok()) return s;
            std::memcpy(mem + (a - offset), stage + (a - pos), b - a);
            continue;
        }
        // Keep the bytes of partial boundary blocks: read them first (zeros past the end of the file).
        for (uint64_t blk : {pos, wend - align}) {
            if ((blk == pos && a > pos) || (blk == wend - align && b < wend)) {
                std::memset(stage + (blk - pos), 0, align);
                Status s = submit_aligned(d, FLEXRT_IO_OP_READ, blk, stage + (blk - pos), align);
                if (!s.is_ok()) return s;
            }
        }
        std::memcpy(stage + (a - pos), mem + (a - offset), b - a);
        Status s = submit_aligned(d, op, pos, stage, wend - pos);
        if (!s.is_ok()) return s;
    }
    return Status::ok();
}

}  // namespace

Status disk_read(DiskBuffer& file, uint64_t offset, std::byte* mem, uint64_t bytes, StagingPool* pool) {
    return disk_io(file, FLEXRT_IO_OP_READ, offset, mem, bytes, pool);
}

Status disk_write(DiskBuffer& file, uint64_t offset, const std::byte* mem, uint64_t bytes, StagingPool* pool) {
    return disk_io(file, FLEXRT_IO_OP_WRITE, offset, const_cast<std::byte*>(mem), bytes, pool);
}

Status copy_now(View dst, View src, StagingPool* pool) {
    FLEXRT_ASSERT(dst.bytes == src.bytes && dst.buffer && src.buffer);
    FLEXRT_ASSERT(dst.offset + dst.bytes <= dst.buffer->bytes() && src.offset + src.bytes <= src.buffer->bytes());
    if (dst.bytes == 0) return Status::ok();
    std::byte* d = dst.buffer->data();
    std::byte* s = src.buffer->data();
    const MemoryKind dk = dst.buffer->memory(), sk = src.buffer->memory();
    if (dk == MemoryKind::device || sk == MemoryKind::device) {  // a GPU on one side: CUDA copies, pinned staging
        if (dk != MemoryKind::file && sk != MemoryKind::file) {
            if ((dk == MemoryKind::host || sk == MemoryKind::host) && pool && pool->pinned())  // pageable: relay
                return gpu_copy_relayed(d + dst.offset, dk, s + src.offset, sk, dst.bytes, *pool);
            return gpu_copy(d + dst.offset, dk, s + src.offset, sk, dst.bytes);
        }
        std::optional<StagingPool> local;  // tools and tests without a transfer engine
        if (!pool || !pool->pinned()) pool = &local.emplace(8ull << 20, 4, true);
        if (sk == MemoryKind::file)
            return read_to_gpu(static_cast<DiskBuffer&>(*src.buffer), src.offset, src.bytes, d + dst.offset, *pool, pool->chunks());
        return write_from_gpu(s + src.offset, static_cast<DiskBuffer&>(*dst.buffer), dst.offset, dst.bytes, *pool, pool->chunks());
    }
    if (d && s) {
        std::memmove(d + dst.offset, s + src.offset, dst.bytes);
        return Status::ok();
    }
    if (d) return disk_io(static_cast<DiskBuffer&>(*src.buffer), FLEXRT_IO_OP_READ, src.offset, d + dst.offset, dst.bytes, pool);
    if (s) return disk_io(static_cast<DiskBuffer&>(*dst.buffer), FLEXRT_IO_OP_WRITE, dst.offset, s + src.offset, dst.bytes, pool);
    // disk to disk: through host memory, a chunk at a time
    std::vector<std::byte> tmp(std::min<uint64_t>(kChunk, dst.bytes));
    for (uint64_t done = 0; done < dst.bytes; done += tmp.size()) {
        const uint64_t n = std::min<uint64_t>(tmp.size(), dst.bytes - done);
        Status st = disk_io(static_cast<DiskBuffer&>(*src.buffer), FLEXRT_IO_OP_READ, src.offset + done, tmp.data(), n, pool);
        if (st.is_ok()) st = disk_io(static_cast<DiskBuffer&>(*dst.buffer), FLEXRT_IO_OP_WRITE, dst.offset + done, tmp.data(), n, pool);
        if (!st.is_ok()) return st;
    }
    return Status::ok();
}

// --- the engine -----------------------------------------------------------------------------------

TransferEngine::TransferEngine(unsigned threads, uint64_t staging_bytes, bool pinned)
    : pool_(threads), staging_(kStagingChunk, static_cast<unsigned>(std::max<uint64_t>(2, staging_bytes / kStagingChunk)), pinned) {}

TransferEngine::~TransferEngine() {
    wait_all().ignore();  // a destructor cannot report; callers that care call wait_all() first
    pool_.join();
}

Event TransferEngine::copy(View dst, View src, std::vector<Event> after) {
    if (trace::on()) {  // a span on the worker's track: "host -> compute 1.5 MB"
        char what[96];
        std::snprintf(what, sizeof what, "%s -> %s %.1f MB", tier_name(src.buffer->device().kind()), tier_name(dst.buffer->device().kind()),
                      static_cast<double>(src.bytes) / 1e6);
        return start(
            [this, dst, src, name = std::string(what)] {
                trace::name_thread_once("transfer worker");
                trace::Span span("transfer", name);
                return copy_now(dst, src, &staging_);
            },
            std::move(after));
    }
    return start([this, dst, src] { return copy_now(dst, src, &staging_); }, std::move(after));
}

Event TransferEngine::run(std::function<Status()> fn, std::vector<Event> after) {
    if (trace::on())
        return start(
            [fn = std::move(fn)] {
                trace::name_thread_once("transfer worker");
                trace::Span span("transfer", "task");
                return fn();
            },
            std::move(after));
    return start(std::move(fn), std::move(after));
}

Event TransferEngine::start(std::function<Status()> fn, std::vector<Event> after) {
    Event done = Event::pending();
    {
        std::lock_guard lock(m_);
        ++in_flight_;
    }
    auto finish = [this, done](Status s) {
        {
            std::lock_guard lock(m_);
            if (!s.is_ok() && first_failure_.is_ok()) first_failure_ = s;
        }
        done.complete(std::move(s));
        std::lock_guard lock(m_);
        if (--in_flight_ == 0) idle_.notify_all();
    };
    // Post the work once the last dependency completes; the first failure among them wins.
    struct Gate {
        std::atomic<size_t> remaining;
        std::mutex m;
        Status failure;
    };
    auto gate = std::make_shared<Gate>();
    gate->remaining = after.size() + 1;
    auto arrive = [this, gate, fn = std::move(fn), finish](const Status& s) mutable {
        if (!s.is_ok()) {
            std::lock_guard lock(gate->m);
            if (gate->failure.is_ok()) gate->failure = s;
        }
        if (--gate->remaining != 0) return;
        if (!gate->failure.is_ok()) return finish(gate->failure);
        boost::asio::post(pool_, [fn = std::move(fn), finish]() mutable {
            Status result;
            try {
                result = fn();
            } catch (const Error& e) { result = Status(e.status(), e.what()); } catch (const std::exception& e) {
                result = Status(FLEXRT_STATUS_INTERNAL, e.what());
            }
            finish(std::move(result));
        });
    };
    auto shared_arrive = std::make_shared<decltype(arrive)>(std::move(arrive));
    for (const auto& e : after) e.then([shared_arrive](const Status& s) { (*shared_arrive)(s); });
    (*shared_arrive)(Status::ok());
    return done;
}

Status TransferEngine::wait_all() {
    std::unique_lock lock(m_);
    idle_.wait(lock, [&] { return in_flight_ == 0; });
    Status s = first_failure_;
    first_failure_ = Status::ok();
    return s;
}

}  // namespace flexrt
