#include "core/src/nccl_communicator.hpp"

#include "cuda_check.hpp"

#include <flexrt/status.hpp>

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace flexrt {
namespace {

// The NCCL entry points flexrt uses, from libnccl.so.2 opened at run time.
struct NcclApi {
    void* lib = nullptr;
    ncclResult_t (*get_unique_id)(ncclUniqueId*) = nullptr;
    ncclResult_t (*comm_init_rank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
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
            sym(a.comm_init_rank, "ncclCommInitRank");
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
    std::atomic<bool> aborted{false};

    // Waits for the stream's NCCL work without blocking in the driver: a peer that died never completes its
    // side, so every millisecond this asks the bootstrap whether `peer` (-1: any) is gone and NCCL whether it
    // failed, and aborts the communicator then, with an error naming the rank.
    void wait(int peer, const std::string& what) {
        for (;;) {
            const cudaError_t q = cudaStreamQuery(stream);
            if (q == cudaSuccess) return;
            if (q != cudaErrorNotReady) FLEXRT_CUDA_CHECK(q);
            ncclResult_t async = ncclSuccess;
            api.comm_get_async_error(comm, &async);
            if (aborted) FLEXRT_THROW(FLEXRT_STATUS_CANCELLED, what + ": the communicator was aborted");
            int gone = -1;
            for (int r = 0; r < world && gone < 0; ++r)
                if (r != rank && (peer < 0 || r == peer) && bootstrap->peer_gone(r)) gone = r;
            if (async != ncclSuccess || gone >= 0) {
                abort();
                FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, what + ": " +
                                                         (gone >= 0 ? "rank " + std::to_string(gone) + " has ended"
                                                                    : std::string("NCCL: ") + api.error_string(async)));
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    void abort() noexcept {
        if (!aborted.exchange(true) && comm) api.comm_abort(comm), comm = nullptr;
    }
};

NcclCommunicator::NcclCommunicator(ICommunicator& bootstrap, int device) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.rank = bootstrap.rank(), m.world = bootstrap.world(), m.bootstrap = &bootstrap;
    FLEXRT_CUDA_CHECK(cudaSetDevice(device));
    ncclUniqueId id{};
    if (m.rank == 0) m.api.check(m.api.get_unique_id(&id), "ncclGetUniqueId");
    for (int r = 1; r < m.world; ++r) {  // rank 0's id to every rank, over the bootstrap
        if (m.rank == 0) bootstrap.send(r, &id, sizeof id, 0x4e43434c);
        if (m.rank == r) bootstrap.recv(0, &id, sizeof id, 0x4e43434c);
    }
    m.api.check(m.api.comm_init_rank(&m.comm, m.world, id, m.rank), "ncclCommInitRank (rank " + std::to_string(m.rank) + ")");
    FLEXRT_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
    FLEXRT_CUDA_CHECK(cudaMalloc(&m.scratch, sizeof(float)));
}

NcclCommunicator::~NcclCommunicator() {
    if (!impl_) return;
    if (impl_->stream && !impl_->aborted) cudaStreamSynchronize(impl_->stream);
    if (impl_->comm) impl_->api.comm_destroy(impl_->comm);
    if (impl_->stream) cudaStreamDestroy(impl_->stream);
    if (impl_->scratch) cudaFree(impl_->scratch);
}

int NcclCommunicator::rank() const noexcept { return impl_->rank; }
int NcclCommunicator::world() const noexcept { return impl_->world; }

void NcclCommunicator::send(int peer, const void* data, uint64_t bytes, uint64_t) {
    const std::string what = "ncclSend to rank " + std::to_string(peer);
    impl_->api.check(impl_->api.send(data, bytes, ncclUint8, peer, impl_->comm, impl_->stream), what);
    impl_->wait(peer, what);
}

void NcclCommunicator::recv(int peer, void* data, uint64_t bytes, uint64_t) {
    const std::string what = "ncclRecv from rank " + std::to_string(peer);
    impl_->api.check(impl_->api.recv(data, bytes, ncclUint8, peer, impl_->comm, impl_->stream), what);
    impl_->wait(peer, what);
}

void NcclCommunicator::send_recv(int to, const void* out, int from, void* in, uint64_t bytes) {
    const NcclApi& api = impl_->api;
    api.check(api.group_start(), "ncclGroupStart");
    api.check(api.send(out, bytes, ncclUint8, to, impl_->comm, impl_->stream), "ncclSend to rank " + std::to_string(to));
    api.check(api.recv(in, bytes, ncclUint8, from, impl_->comm, impl_->stream), "ncclRecv from rank " + std::to_string(from));
    api.check(api.group_end(), "ncclGroupEnd");
    impl_->wait(-1, "ncclSend to rank " + std::to_string(to) + " and ncclRecv from rank " + std::to_string(from));
}

void NcclCommunicator::barrier() {
    impl_->api.check(impl_->api.all_reduce(impl_->scratch, impl_->scratch, 1, ncclFloat32, ncclSum, impl_->comm, impl_->stream),
                     "ncclAllReduce");
    impl_->wait(-1, "the barrier (ncclAllReduce)");
}

void NcclCommunicator::abort() noexcept { impl_->abort(); }

bool NcclCommunicator::peer_gone(int peer) noexcept { return impl_->bootstrap->peer_gone(peer); }

}  // namespace flexrt
