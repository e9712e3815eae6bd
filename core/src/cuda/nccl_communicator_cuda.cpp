#include "core/src/nccl_communicator.hpp"

#include "cuda_check.hpp"

#include <flexrt/status.hpp>

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

namespace flexrt {
namespace {

// The NCCL entry points flexrt uses, from libnccl.so.2 opened at run time.
struct NcclApi {
    void* lib = nullptr;
    ncclResult_t (*get_unique_id)(ncclUniqueId*) = nullptr;
    ncclResult_t (*comm_init_rank_config)(ncclComm_t*, int, ncclUniqueId, int, ncclConfig_t*) = nullptr;
    ncclResult_t (*comm_destroy)(ncclComm_t) = nullptr;
    ncclResult_t (*comm_abort)(ncclComm_t) = nullptr;
    ncclResult_t (*comm_get_async_error)(ncclComm_t, ncclResult_t*) = nullptr;
    ncclResult_t (*send)(const void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t) = nullptr;
    ncclResult_t (*recv)(void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t) = nullptr;
    ncclResult_t (*group_start)() = nullptr;
    ncclResult_t (*group_end)() = nullptr;
    ncclResult_t (*all_reduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t) = nullptr;
    const char* (*error_string)(ncclResult_t) = nullptr;

    static const NcclApi& get() {
        static const NcclApi api = [] {
            NcclApi a;
            a.lib = ::dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
            if (!a.lib)
                FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND,
                             std::string("a pipeline over GPUs needs NCCL, and libnccl.so.2 cannot be loaded: ") + ::dlerror());
            auto sym = [&](auto& fn, const char* name) {
                fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(a.lib, name));
                if (!fn) FLEXRT_THROW(FLEXRT_STATUS_ABI_MISMATCH, std::string("libnccl.so.2 has no ") + name);
            };
            sym(a.get_unique_id, "ncclGetUniqueId");
            sym(a.comm_init_rank_config, "ncclCommInitRankConfig");
            sym(a.comm_destroy, "ncclCommDestroy");
            sym(a.comm_abort, "ncclCommAbort");
            sym(a.comm_get_async_error, "ncclCommGetAsyncError");
            sym(a.send, "ncclSend");
            sym(a.recv, "ncclRecv");
            sym(a.group_start, "ncclGroupStart");
            sym(a.group_end, "ncclGroupEnd");
            sym(a.all_reduce, "ncclAllReduce");
            sym(a.error_string, "ncclGetErrorString");
            return a;
        }();
        return api;
    }
    void check(ncclResult_t r, const std::string& what) const {
        if (r != ncclSuccess) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, what + ": NCCL: " + error_string(r));
    }
};

}  // namespace

struct NcclCommunicator::Impl {
    const NcclApi& api = NcclApi::get();
    int rank = 0, world = 1;
    ncclComm_t comm = nullptr;
    cudaStream_t stream = nullptr;
    void* scratch = nullptr;  // one float for barrier()
    ICommunicator* bootstrap = nullptr;
    // abort() may come from another thread (the pipeline's sending one) while this one issues or waits: `comm`
    // and `aborted` change under the lock only.
    std::mutex mutex;
    bool aborted = false;

    ~Impl() {
        if (stream && !aborted) cudaStreamSynchronize(stream);
        if (comm) api.comm_destroy(comm);
        if (stream) cudaStreamDestroy(stream);
        if (scratch) cudaFree(scratch);
    }
    // Calls `op` with the communicator (NCCL's non-blocking mode: in progress is not a failure).
    template <typename Op>
    void issue(const std::string& what, Op&& op) {
        std::lock_guard lock(mutex);
        if (aborted) FLEXRT_THROW(FLEXRT_STATUS_CANCELLED, what + ": the communicator was aborted");
        const ncclResult_t r = op(comm);
        if (r != ncclSuccess && r != ncclInProgress) api.check(r, what);
    }
    // The first rank in `peer` (-1: any) whose connection has ended, or -1.
    int gone(int peer) const {
        for (int r = 0; r < world; ++r)
            if (r != rank && (peer < 0 || r == peer) && bootstrap->peer_gone(r)) return r;
        return -1;
    }
    // Waits until `done` (asked under the lock), without blocking in the driver: a peer that died never
    // completes its side, so every 200 us this asks the bootstrap whether `peer` (-1: any) is gone and NCCL
    // whether it failed, and aborts the communicator then, with an error naming the rank.
    template <typename Done>
    void poll(int peer, const std::string& what, Done&& done) {
        for (;;) {
            ncclResult_t async = ncclSuccess;
            {
                std::lock_guard lock(mutex);
                if (aborted) FLEXRT_THROW(FLEXRT_STATUS_CANCELLED, what + ": the communicator was aborted");
                if (done()) return;
                api.comm_get_async_error(comm, &async);
            }
            const int lost = gone(peer);
            if ((async != ncclSuccess && async != ncclInProgress) || lost >= 0) {
                abort();
                FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, what + ": " +
                                                         (lost >= 0 ? "rank " + std::to_string(lost) + " has ended"
                                                                    : std::string("NCCL: ") + api.error_string(async)));
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    // Waits for the stream's NCCL work.
    void wait(int peer, const std::string& what) {
        poll(peer, what, [&] {
            const cudaError_t q = cudaStreamQuery(stream);
            if (q != cudaSuccess && q != cudaErrorNotReady) FLEXRT_CUDA_CHECK(q);
            return q == cudaSuccess;
        });
    }
    void abort() noexcept {
        std::lock_guard lock(mutex);
        if (aborted) return;
        aborted = true;
        if (comm) api.comm_abort(comm), comm = nullptr;
    }
};

NcclCommunicator::NcclCommunicator(ICommunicator& bootstrap, int device) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.rank = bootstrap.rank(), m.world = bootstrap.world(), m.bootstrap = &bootstrap;
    FLEXRT_CUDA_CHECK(cudaSetDevice(device));
    FLEXRT_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
    FLEXRT_CUDA_CHECK(cudaMalloc(&m.scratch, sizeof(float)));
    ncclUniqueId id{};
    if (m.rank == 0) m.api.check(m.api.get_unique_id(&id), "ncclGetUniqueId");
    for (int r = 1; r < m.world; ++r) {  // rank 0's id to every rank, over the bootstrap
        if (m.rank == 0) bootstrap.send(r, &id, sizeof id, 0x4e43434c);
        if (m.rank == r) bootstrap.recv(0, &id, sizeof id, 0x4e43434c);
    }
    // Non-blocking: a rank that fails before it joins would leave the others inside a blocking init for ever.
    const std::string what = "ncclCommInitRankConfig (rank " + std::to_string(m.rank) + ")";
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    {
        std::lock_guard lock(m.mutex);
        const ncclResult_t r = m.api.comm_init_rank_config(&m.comm, m.world, id, m.rank, &config);
        if (r != ncclSuccess && r != ncclInProgress) m.api.check(r, what);
    }
    m.poll(-1, what, [&] {
        ncclResult_t state = ncclInProgress;
        m.api.comm_get_async_error(m.comm, &state);
        if (state != ncclSuccess && state != ncclInProgress) m.api.check(state, what);
        return state == ncclSuccess;
    });
}

NcclCommunicator::~NcclCommunicator() = default;

int NcclCommunicator::rank() const noexcept { return impl_->rank; }
int NcclCommunicator::world() const noexcept { return impl_->world; }

void NcclCommunicator::send(int peer, const void* data, uint64_t bytes, uint64_t) {
    const std::string what = "ncclSend to rank " + std::to_string(peer);
    impl_->issue(what, [&](ncclComm_t c) { return impl_->api.send(data, bytes, ncclUint8, peer, c, impl_->stream); });
    impl_->wait(peer, what);
}

void NcclCommunicator::recv(int peer, void* data, uint64_t bytes, uint64_t) {
    const std::string what = "ncclRecv from rank " + std::to_string(peer);
    impl_->issue(what, [&](ncclComm_t c) { return impl_->api.recv(data, bytes, ncclUint8, peer, c, impl_->stream); });
    impl_->wait(peer, what);
}

void NcclCommunicator::send_recv(int to, const void* out, int from, void* in, uint64_t bytes) {
    const NcclApi& api = impl_->api;
    const std::string what = "ncclSend to rank " + std::to_string(to) + " and ncclRecv from rank " + std::to_string(from);
    impl_->issue(what, [&](ncclComm_t c) {
        api.check(api.group_start(), "ncclGroupStart");
        const ncclResult_t a = api.send(out, bytes, ncclUint8, to, c, impl_->stream);
        const ncclResult_t b = api.recv(in, bytes, ncclUint8, from, c, impl_->stream);
        const ncclResult_t end = api.group_end();
        return a != ncclSuccess && a != ncclInProgress ? a : b != ncclSuccess && b != ncclInProgress ? b : end;
    });
    impl_->wait(-1, what);
}

void NcclCommunicator::barrier() {
    const std::string what = "the barrier (ncclAllReduce)";
    impl_->issue(what, [&](ncclComm_t c) {
        return impl_->api.all_reduce(impl_->scratch, impl_->scratch, 1, ncclFloat32, ncclSum, c, impl_->stream);
    });
    impl_->wait(-1, what);
}

void NcclCommunicator::abort() noexcept { impl_->abort(); }

bool NcclCommunicator::peer_gone(int peer) noexcept { return impl_->bootstrap->peer_gone(peer); }

}  // namespace flexrt
