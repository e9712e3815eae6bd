#include "core/src/gpu_upload.hpp"

#include "core/src/host_log.hpp"
#include "core/src/transfer.hpp"
#include "cuda_check.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace flexrt {

bool gpu_available() noexcept {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

uint64_t gpu_free_memory() noexcept {
    size_t free_b = 0, total_b = 0;
    return cudaMemGetInfo(&free_b, &total_b) == cudaSuccess ? free_b : 0;
}

std::string gpu_name() {
    int dev = 0;
    cudaDeviceProp prop{};
    if (!gpu_available() || cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return "";
    return prop.name;
}

GpuMemory::GpuMemory(uint64_t bytes) : bytes_(bytes) {
    void* p = nullptr;
    FLEXRT_CUDA_CHECK(cudaMalloc(&p, bytes));
    data_ = static_cast<std::byte*>(p);
}

GpuMemory::~GpuMemory() {
    if (data_) cudaFree(data_);
}

void GpuMemory::copy_to_host(void* dst, uint64_t offset, uint64_t bytes) const {
    FLEXRT_CUDA_CHECK(cudaMemcpy(dst, data_ + offset, bytes, cudaMemcpyDeviceToHost));
}

namespace {

// One chunk of the pipeline: a pinned lease, its storage request and the event of its device copy.
struct Slot {
    std::optional<StagingPool::Lease> lease;
    flexrt_io_request req{};
    bool in_flight = false;  // the storage request has been submitted and not yet waited for
    cudaEvent_t copied{};
    bool copying = false;  // a device copy into or out of the lease has been queued
};

// The stream and the slots, torn down in the safe order whatever happens: storage requests in flight are
// waited for and the stream drained before any lease goes back to the pool.
class Pipeline {
public:
    // Waits for one lease and takes up to `depth` if they are free: pipelines running side by side (one per
    // transfer worker) share the pool without waiting on each other.
    Pipeline(IStorage& st, unsigned depth, StagingPool& pinned) : st_(st) {
        FLEXRT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        slots_.emplace_back().lease.emplace(pinned.acquire());
        while (slots_.size() < std::max(1u, depth)) {
            auto lease = pinned.try_acquire();
            if (!lease) break;
            slots_.emplace_back().lease.emplace(std::move(*lease));
        }
        for (auto& s : slots_) FLEXRT_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
    }
    ~Pipeline() {
        for (auto& s : slots_) wait(s);
        cudaStreamSynchronize(stream_);
        for (auto& s : slots_)
            if (s.copied) cudaEventDestroy(s.copied);
        cudaStreamDestroy(stream_);
    }
    Slot& slot(uint64_t chunk) { return slots_[chunk % slots_.size()]; }
    size_t depth() const { return slots_.size(); }
    cudaStream_t stream() const { return stream_; }
    void submit(Slot& s) {
        flexrt_io_request* rp = &s.req;
        take_last_plugin_error();
        if (flexrt_status e = st_.submit(&rp, 1); e != FLEXRT_STATUS_OK) FLEXRT_THROW(e, "submit: " + take_last_plugin_error());
        s.in_flight = true;
    }
    void wait(Slot& s) {
        if (!s.in_flight) return;
        flexrt_io_request* rp = &s.req;
        st_.wait(&rp, 1);
        s.in_flight = false;
    }

private:
    IStorage& st_;
    std::deque<Slot> slots_;  // a deque: slots never move (requests point into them)
    cudaStream_t stream_{};
};

flexrt_io_request make_request(flexrt_io_op op, const DiskBuffer& f, uint64_t offset, uint64_t bytes, std::byte* buf) {
    flexrt_io_request r{};
    r.struct_size = sizeof r;
    r.op = op;
    r.file = f.file();
    r.offset = offset;
    r.bytes = bytes;
    r.buffer = buf;
    return r;
}

Status io_failure(const flexrt_io_request& r, const DiskBuffer& f, const char* verb, const char* short_what) {
    return {r.status ? r.status : FLEXRT_STATUS_IO_ERROR, std::string(verb) + f.path().string() + " at offset " + std::to_string(r.offset) +
                                                              ": " + (r.sys_errno ? errno_text(r.sys_errno) : std::string(short_what))};
}

uint64_t checked_alignment(IStorage& st, uint64_t chunk, const char* who) {
    const uint64_t align = std::max<uint64_t>(1, st.required_alignment());
    if (chunk % align)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string(who) + ": staging chunks must be multiples of " + std::to_string(align));
    return align;
}

// One stream per transfer-engine worker thread, made on first use and kept for the thread's life.
cudaStream_t thread_stream() {
    thread_local struct Owned {
        cudaStream_t s{};
        ~Owned() {
            if (s) cudaStreamDestroy(s);
        }
    } owned;
    if (!owned.s) FLEXRT_CUDA_CHECK(cudaStreamCreateWithFlags(&owned.s, cudaStreamNonBlocking));
    return owned.s;
}

}  // namespace

Status gpu_copy(std::byte* dst, MemoryKind dst_kind, const std::byte* src, MemoryKind src_kind, uint64_t bytes) {
    try {
        const cudaMemcpyKind kind = dst_kind == MemoryKind::device
                                        ? (src_kind == MemoryKind::device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                        : cudaMemcpyDeviceToHost;
        cudaStream_t s = thread_stream();
        FLEXRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, s));
        FLEXRT_CUDA_CHECK(cudaStreamSynchronize(s));
        return Status::ok();
    } catch (const Error& e) { return {e.status(), e.what()}; }
}

Status gpu_copy_relayed(std::byte* dst, MemoryKind dst_kind, const std::byte* src, MemoryKind src_kind, uint64_t bytes,
                        StagingPool& pinned) {
    try {
        const bool up = dst_kind == MemoryKind::device;  // pageable host -> GPU, else GPU -> pageable host
        cudaStream_t s = thread_stream();
        // Two leases at most, the second only if free (see Pipeline): chunk c uses lease c % n.
        std::vector<StagingPool::Lease> leases;
        leases.push_back(pinned.acquire());
        if (auto second = pinned.try_acquire()) leases.push_back(std::move(*second));
        std::vector<cudaEvent_t> done(leases.size());
        for (auto& e : done) FLEXRT_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
        struct Cleanup {
            cudaStream_t s;
            std::vector<cudaEvent_t>& events;
            ~Cleanup() {
                cudaStreamSynchronize(s);
                for (auto e : events) cudaEventDestroy(e);
            }
        } cleanup{s, done};
        const uint64_t chunk = pinned.chunk_bytes(), n = (bytes + chunk - 1) / chunk;
        const size_t L = leases.size();
        auto land = [&](uint64_t c) {  // a finished download: from its lease to pageable memory
            FLEXRT_CUDA_CHECK(cudaEventSynchronize(done[c % L]));
            std::memcpy(dst + c * chunk, leases[c % L].data(), std::min(chunk, bytes - c * chunk));
        };
        for (uint64_t c = 0; c < n; ++c) {
            const size_t k = c % L;
            const uint64_t off = c * chunk, len = std::min(chunk, bytes - off);
            if (up) {
                if (c >= L) FLEXRT_CUDA_CHECK(cudaEventSynchronize(done[k]));  // its last upload has left the lease
                std::memcpy(leases[k].data(), src + off, len);
                FLEXRT_CUDA_CHECK(cudaMemcpyAsync(dst + off, leases[k].data(), len, cudaMemcpyHostToDevice, s));
                FLEXRT_CUDA_CHECK(cudaEventRecord(done[k], s));
            } else {
                if (L == 1 && c > 0) land(c - 1);  // one lease: it must be emptied before it is refilled
                FLEXRT_CUDA_CHECK(cudaMemcpyAsync(leases[k].data(), src + off, len, cudaMemcpyDeviceToHost, s));
                FLEXRT_CUDA_CHECK(cudaEventRecord(done[k], s));
                if (L > 1 && c > 0) land(c - 1);  // chunk c is on its way while chunk c - 1 lands
            }
        }
        if (!up && n > 0) land(n - 1);
        (void)src_kind;
        return Status::ok();
    } catch (const Error& e) { return {e.status(), e.what()}; }
}

Status read_to_gpu(DiskBuffer& src, uint64_t offset, uint64_t bytes, std::byte* dst, StagingPool& pinned, unsigned depth) {
    // One disk -> GPU stream at a time, each with all its requests in flight: two transfer workers reading two
    // layers side by side interleave requests at distant offsets, and BENCH.md's disk then delivers 1.48 GB/s
    // where one stream reads at 1.76 (measured on the H100 machine, W4).
    static std::mutex one_stream;
    std::lock_guard lock(one_stream);
    try {
        IStorage& st = src.storage();
        const uint64_t chunk = pinned.chunk_bytes(), align = checked_alignment(st, chunk, "read_to_gpu");
        // Chunks tile the aligned range around [offset, end); each is read whole and its useful part copied.
        const uint64_t end = offset + bytes, start = offset / align * align, span = (end + align - 1) / align * align - start;
        Pipeline p(st, depth, pinned);
        const uint64_t n = (span + chunk - 1) / chunk;
        // Chunk c lives in slot c % depth: its read is submitted depth chunks ahead of its copy.
        auto read = [&](uint64_t c) {
            Slot& s = p.slot(c);
            if (s.copying) FLEXRT_CUDA_CHECK(cudaEventSynchronize(s.copied));  // the chunk before it has left
            s.copying = false;
            s.req = make_request(FLEXRT_IO_OP_READ, src, start + c * chunk, std::min(chunk, span - c * chunk), s.lease->data());
            p.submit(s);
        };
        for (uint64_t c = 0; c < std::min<uint64_t>(n, p.depth()); ++c) read(c);
        for (uint64_t c = 0; c < n; ++c) {
            Slot& s = p.slot(c);
            p.wait(s);
            const uint64_t lo = start + c * chunk, a = std::max(lo, offset), b = std::min(lo + s.req.bytes, end);
            if (s.req.status != FLEXRT_STATUS_OK || s.req.bytes_done < b - lo) return io_failure(s.req, src, "reading ", "short read");
            FLEXRT_CUDA_CHECK(cudaMemcpyAsync(dst + (a - offset), s.lease->data() + (a - lo), b - a, cudaMemcpyHostToDevice, p.stream()));
            FLEXRT_CUDA_CHECK(cudaEventRecord(s.copied, p.stream()));
            s.copying = true;
            if (c + p.depth() < n) read(c + p.depth());
        }
        return Status::ok();
    } catch (const Error& e) { return {e.status(), e.what()}; }
}

Status write_from_gpu(const std::byte* src, DiskBuffer& dst, uint64_t offset, uint64_t bytes, StagingPool& pinned, unsigned depth) {
    try {
        IStorage& st = dst.storage();
        const uint64_t chunk = pinned.chunk_bytes(), align = checked_alignment(st, chunk, "write_from_gpu");
        if (offset % align) {  // misaligned start: chunk by chunk through host staging and read-modify-write
            StagingPool::Lease lease = pinned.acquire();
            for (uint64_t done = 0; done < bytes; done += chunk) {
                const uint64_t len = std::min(chunk, bytes - done);
                Status c = gpu_copy(lease.data(), MemoryKind::host, src + done, MemoryKind::device, len);
                if (c.is_ok()) c = disk_write(dst, offset + done, lease.data(), len);
                if (!c.is_ok()) return c;
            }
            return Status::ok();
        }
        Pipeline p(st, depth, pinned);
        const uint64_t n = (bytes + chunk - 1) / chunk;
        Status result;
        auto written = [&](Slot& s) {  // the slot's previous chunk is on disk (or failed)
            if (!s.in_flight) return;
            p.wait(s);
            if (result.is_ok() && (s.req.status != FLEXRT_STATUS_OK || s.req.bytes_done != s.req.bytes))
                result = io_failure(s.req, dst, "writing ", "short write");
        };
        auto copy_down = [&](uint64_t c) {  // device -> pinned, async
            Slot& s = p.slot(c);
            written(s);
            FLEXRT_CUDA_CHECK(
                cudaMemcpyAsync(s.lease->data(), src + c * chunk, std::min(chunk, bytes - c * chunk), cudaMemcpyDeviceToHost, p.stream()));
            FLEXRT_CUDA_CHECK(cudaEventRecord(s.copied, p.stream()));
        };
        for (uint64_t c = 0; c < std::min<uint64_t>(n, p.depth()); ++c) copy_down(c);
        for (uint64_t c = 0; c < n && result.is_ok(); ++c) {
            Slot& s = p.slot(c);
            FLEXRT_CUDA_CHECK(cudaEventSynchronize(s.copied));
            const uint64_t len = std::min(chunk, bytes - c * chunk), pos = offset + c * chunk;
            if (len % align) {
                result = disk_write(dst, pos, s.lease->data(), len);  // the unaligned tail: read-modify-write
            } else {
                s.req = make_request(FLEXRT_IO_OP_WRITE, dst, pos, len, s.lease->data());
                p.submit(s);
            }
            if (result.is_ok() && c + p.depth() < n) copy_down(c + p.depth());
        }
        for (uint64_t c = 0; c < p.depth(); ++c) written(p.slot(c));
        return result;
    } catch (const Error& e) { return {e.status(), e.what()}; }
}

}  // namespace flexrt
