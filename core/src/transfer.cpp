#include "transfer.hpp"

#include "host_log.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

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

// Reads or writes `bytes` at `offset` of a disk buffer from/to host memory, in chunks, checking every
// request's status and byte count.
Status disk_io(DiskBuffer& d, flexrt_io_op op, uint64_t offset, std::byte* mem, uint64_t bytes) {
    IStorage& st = d.storage();
    const uint64_t align = st.required_alignment();
    const bool aligned = align <= 1 || (offset % align == 0 && bytes % align == 0 &&
                                        reinterpret_cast<uintptr_t>(mem) % align == 0);
    if (!aligned) {
        if (op == FLEXRT_IO_OP_WRITE)
            return {FLEXRT_STATUS_UNSUPPORTED, "unaligned write to " + io_where(d, offset, bytes) +
                                                   " (the storage plugin needs " + std::to_string(align) + "-byte alignment)"};
        // Bounce: read the aligned range that covers the request, then copy the part asked for.
        uint64_t start = offset / align * align;
        uint64_t end = std::min((offset + bytes + align - 1) / align * align, (d.bytes() + align - 1) / align * align);
        std::unique_ptr<std::byte, decltype(&std::free)> bounce(
            static_cast<std::byte*>(std::aligned_alloc(align, end - start)), &std::free);
        if (!bounce) return {FLEXRT_STATUS_OUT_OF_MEMORY, "no memory for a bounce buffer reading " + io_where(d, offset, bytes)};
        Status s = disk_io(d, op, start, bounce.get(), end - start);
        if (!s.is_ok()) return s;
        std::memcpy(mem, bounce.get() + (offset - start), bytes);
        return Status::ok();
    }
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
        if (r.status != FLEXRT_STATUS_OK || r.bytes_done != r.bytes) {
            std::string why = r.sys_errno ? errno_text(r.sys_errno)
                                          : std::string(flexrt_status_name(r.status)) + ", " + std::to_string(r.bytes_done) +
                                                " of " + std::to_string(r.bytes) + " bytes transferred";
            return {r.status != FLEXRT_STATUS_OK ? r.status : FLEXRT_STATUS_IO_ERROR,
                    verb + io_where(d, r.offset, r.bytes) + ": " + why};
        }
    }
    return Status::ok();
}

}  // namespace

Status disk_read(DiskBuffer& file, uint64_t offset, std::byte* mem, uint64_t bytes) {
    return disk_io(file, FLEXRT_IO_OP_READ, offset, mem, bytes);
}

Status disk_write(DiskBuffer& file, uint64_t offset, const std::byte* mem, uint64_t bytes) {
    return disk_io(file, FLEXRT_IO_OP_WRITE, offset, const_cast<std::byte*>(mem), bytes);
}

Status copy_now(View dst, View src) {
    FLEXRT_ASSERT(dst.bytes == src.bytes && dst.buffer && src.buffer);
    FLEXRT_ASSERT(dst.offset + dst.bytes <= dst.buffer->bytes() && src.offset + src.bytes <= src.buffer->bytes());
    if (dst.bytes == 0) return Status::ok();
    std::byte* d = dst.buffer->data();
    std::byte* s = src.buffer->data();
    if (d && s) {
        std::memmove(d + dst.offset, s + src.offset, dst.bytes);
        return Status::ok();
    }
    if (d) return disk_io(static_cast<DiskBuffer&>(*src.buffer), FLEXRT_IO_OP_READ, src.offset, d + dst.offset, dst.bytes);
    if (s) return disk_io(static_cast<DiskBuffer&>(*dst.buffer), FLEXRT_IO_OP_WRITE, dst.offset, s + src.offset, dst.bytes);
    // disk to disk: through host memory, a chunk at a time
    std::unique_ptr<std::byte, decltype(&std::free)> tmp(static_cast<std::byte*>(std::aligned_alloc(4096, kChunk)), &std::free);
    if (!tmp) return {FLEXRT_STATUS_OUT_OF_MEMORY, "no memory for a disk-to-disk copy"};
    for (uint64_t done = 0; done < dst.bytes; done += kChunk) {
        uint64_t n = std::min(kChunk, dst.bytes - done);
        Status st = disk_io(static_cast<DiskBuffer&>(*src.buffer), FLEXRT_IO_OP_READ, src.offset + done, tmp.get(), n);
        if (st.is_ok()) st = disk_io(static_cast<DiskBuffer&>(*dst.buffer), FLEXRT_IO_OP_WRITE, dst.offset + done, tmp.get(), n);
        if (!st.is_ok()) return st;
    }
    return Status::ok();
}

// --- the engine -----------------------------------------------------------------------------------

TransferEngine::TransferEngine(unsigned threads) : pool_(threads) {}

TransferEngine::~TransferEngine() {
    wait_all().ignore();  // a destructor cannot report; callers that care call wait_all() first
    pool_.join();
}

Event TransferEngine::copy(View dst, View src, std::vector<Event> after) {
    return start([dst, src] { return copy_now(dst, src); }, std::move(after));
}

Event TransferEngine::run(std::function<Status()> fn, std::vector<Event> after) { return start(std::move(fn), std::move(after)); }

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
            } catch (const Error& e) {
                result = Status(e.status(), e.what());
            } catch (const std::exception& e) {
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
