#include "core/src/gpu_upload.hpp"

#include "core/src/host_log.hpp"
#include "core/src/transfer.hpp"
#include "cuda_check.hpp"

#include <algorithm>
#include <optional>
#include <vector>

namespace flexrt {

bool gpu_available() noexcept {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
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

Status read_to_gpu(DiskBuffer& src, uint64_t offset, uint64_t bytes, std::byte* dst, StagingPool& pinned, unsigned depth) {
    try {
        IStorage& st = src.storage();
        const uint64_t align = std::max<uint64_t>(1, st.required_alignment()), chunk = pinned.chunk_bytes();
        if (offset % align || chunk % align)
            return {FLEXRT_STATUS_INVALID_ARGUMENT, "read_to_gpu: offset and chunk must be multiples of " + std::to_string(align)};
        cudaStream_t stream{};
        FLEXRT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        struct Slot {
            std::optional<StagingPool::Lease> lease;
            flexrt_io_request req{};
            cudaEvent_t copied{};
            bool copying = false;
        };
        std::vector<Slot> slots(std::clamp(depth, 1u, pinned.chunks()));  // each slot holds a lease throughout
        for (auto& s : slots) FLEXRT_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
        auto cleanup = [&] {
            cudaStreamSynchronize(stream);
            for (auto& s : slots) cudaEventDestroy(s.copied);
            cudaStreamDestroy(stream);
        };
        const uint64_t n = (bytes + chunk - 1) / chunk;
        Status result;
        // Chunk c lives in slot c % depth: its read is submitted depth chunks ahead of its copy.
        auto submit = [&](uint64_t c) -> Status {
            Slot& s = slots[c % slots.size()];
            if (s.copying) FLEXRT_CUDA_CHECK(cudaEventSynchronize(s.copied));  // the chunk before it has left
            s.copying = false;
            if (!s.lease) s.lease.emplace(pinned.acquire());
            const uint64_t len = std::min(chunk, bytes - c * chunk);
            s.req = {};
            s.req.struct_size = sizeof s.req;
            s.req.op = FLEXRT_IO_OP_READ;
            s.req.file = src.file();
            s.req.offset = offset + c * chunk;
            s.req.bytes = (len + align - 1) / align * align;
            s.req.buffer = s.lease->data();
            flexrt_io_request* rp = &s.req;
            take_last_plugin_error();
            if (flexrt_status e = st.submit(&rp, 1); e != FLEXRT_STATUS_OK) return {e, "submit: " + take_last_plugin_error()};
            return Status::ok();
        };
        for (uint64_t c = 0; c < std::min<uint64_t>(n, slots.size()) && result.is_ok(); ++c) result = submit(c);
        for (uint64_t c = 0; c < n && result.is_ok(); ++c) {
            Slot& s = slots[c % slots.size()];
            flexrt_io_request* rp = &s.req;
            st.wait(&rp, 1);
            const uint64_t len = std::min(chunk, bytes - c * chunk);
            if (s.req.status != FLEXRT_STATUS_OK || s.req.bytes_done < len) {
                result = {s.req.status ? s.req.status : FLEXRT_STATUS_IO_ERROR,
                          "reading " + src.path().string() + " at offset " + std::to_string(s.req.offset) + ": " +
                              (s.req.sys_errno ? errno_text(s.req.sys_errno) : std::string("short read"))};
                break;
            }
            FLEXRT_CUDA_CHECK(cudaMemcpyAsync(dst + c * chunk, s.lease->data(), len, cudaMemcpyHostToDevice, stream));
            FLEXRT_CUDA_CHECK(cudaEventRecord(s.copied, stream));
            s.copying = true;
            if (c + slots.size() < n) result = submit(c + slots.size());
        }
        // Requests still in flight after a failure must finish before their leases go.
        for (auto& s : slots) {
            flexrt_io_request* rp = &s.req;
            if (s.lease && s.req.struct_size) st.wait(&rp, 1);
        }
        cleanup();
        return result;
    } catch (const Error& e) {
        return {e.status(), e.what()};
    }
}

Status write_from_gpu(const std::byte* src, DiskBuffer& dst, uint64_t offset, uint64_t bytes, StagingPool& pinned,
                      unsigned depth) {
    try {
        IStorage& st = dst.storage();
        const uint64_t align = std::max<uint64_t>(1, st.required_alignment()), chunk = pinned.chunk_bytes();
        if (offset % align || chunk % align)
            return {FLEXRT_STATUS_INVALID_ARGUMENT, "write_from_gpu: offset and chunk must be multiples of " + std::to_string(align)};
        cudaStream_t stream{};
        FLEXRT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        struct Slot {
            std::optional<StagingPool::Lease> lease;
            flexrt_io_request req{};
            cudaEvent_t copied{};
            bool writing = false;
        };
        std::vector<Slot> slots(std::clamp(depth, 1u, pinned.chunks()));
        for (auto& s : slots) {
            FLEXRT_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
            s.lease.emplace(pinned.acquire());
        }
        const uint64_t n = (bytes + chunk - 1) / chunk;
        Status result;
        auto finish_write = [&](Slot& s) {
            if (!s.writing) return;
            flexrt_io_request* rp = &s.req;
            st.wait(&rp, 1);
            s.writing = false;
            if (result.is_ok() && (s.req.status != FLEXRT_STATUS_OK || s.req.bytes_done != s.req.bytes))
                result = {s.req.status ? s.req.status : FLEXRT_STATUS_IO_ERROR,
                          "writing " + dst.path().string() + " at offset " + std::to_string(s.req.offset) + ": " +
                              (s.req.sys_errno ? errno_text(s.req.sys_errno) : std::string("short write"))};
        };
        auto copy_down = [&](uint64_t c) {  // device -> pinned, async
            Slot& s = slots[c % slots.size()];
            finish_write(s);  // its previous chunk must be on disk before the lease is reused
            const uint64_t len = std::min(chunk, bytes - c * chunk);
            FLEXRT_CUDA_CHECK(cudaMemcpyAsync(s.lease->data(), src + c * chunk, len, cudaMemcpyDeviceToHost, stream));
            FLEXRT_CUDA_CHECK(cudaEventRecord(s.copied, stream));
        };
        for (uint64_t c = 0; c < std::min<uint64_t>(n, slots.size()); ++c) copy_down(c);
        for (uint64_t c = 0; c < n && result.is_ok(); ++c) {
            Slot& s = slots[c % slots.size()];
            FLEXRT_CUDA_CHECK(cudaEventSynchronize(s.copied));
            const uint64_t len = std::min(chunk, bytes - c * chunk), pos = offset + c * chunk;
            if (len % align) {  // the unaligned tail: the core's read-modify-write
                Status t = disk_write(dst, pos, s.lease->data(), len);
                if (!t.is_ok()) result = t;
            } else {
                s.req = {};
                s.req.struct_size = sizeof s.req;
                s.req.op = FLEXRT_IO_OP_WRITE;
                s.req.file = dst.file();
                s.req.offset = pos;
                s.req.bytes = len;
                s.req.buffer = s.lease->data();
                flexrt_io_request* rp = &s.req;
                take_last_plugin_error();
                if (flexrt_status e = st.submit(&rp, 1); e != FLEXRT_STATUS_OK) result = {e, "submit: " + take_last_plugin_error()};
                else s.writing = true;
            }
            if (result.is_ok() && c + slots.size() < n) copy_down(c + slots.size());
        }
        for (auto& s : slots) finish_write(s);
        cudaStreamSynchronize(stream);
        for (auto& s : slots) cudaEventDestroy(s.copied);
        cudaStreamDestroy(stream);
        return result;
    } catch (const Error& e) {
        return {e.status(), e.what()};
    }
}

}  // namespace flexrt
