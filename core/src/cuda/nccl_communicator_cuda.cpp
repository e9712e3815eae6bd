#include "core/src/nccl_communicator.hpp"

#include "cuda_check.hpp"

#include <flexrt/status.hpp>

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <string>

namespace flexrt {
namespace {

// The NCCL entry points flexrt uses, from libnccl.so.2 opened at run time.
struct NcclApi {
    void* lib = nullptr;
    ncclResult_t (*get_unique_id)(ncclUniqueId*) = nullptr;
    ncclResult_t (*comm_init_rank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
    ncclResult_t (*comm_destroy)(ncclComm_t) = nullptr;
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
};

NcclCommunicator::NcclCommunicator(ICommunicator& bootstrap, int device) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.rank = bootstrap.rank(), m.world = bootstrap.world();
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
    if (impl_->stream) cudaStreamSynchronize(impl_->stream);
    if (impl_->comm) impl_->api.comm_destroy(impl_->comm);
    if (impl_->stream) cudaStreamDestroy(impl_->stream);
    if (impl_->scratch) cudaFree(impl_->scratch);
}

int NcclCommunicator::rank() const noexcept { return impl_->rank; }
int NcclCommunicator::world() const noexcept { return impl_->world; }

void NcclCommunicator::send(int peer, const void* data, uint64_t bytes, uint64_t) {
    impl_->api.check(impl_->api.send(data, bytes, ncclUint8, peer, impl_->comm, impl_->stream), "ncclSend to rank " + std::to_string(peer));
    FLEXRT_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

void NcclCommunicator::recv(int peer, void* data, uint64_t bytes, uint64_t) {
    impl_->api.check(impl_->api.recv(data, bytes, ncclUint8, peer, impl_->comm, impl_->stream),
                     "ncclRecv from rank " + std::to_string(peer));
    FLEXRT_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

void NcclCommunicator::send_recv(int to, const void* out, int from, void* in, uint64_t bytes) {
    const NcclApi& api = impl_->api;
    api.check(api.group_start(), "ncclGroupStart");
    api.check(api.send(out, bytes, ncclUint8, to, impl_->comm, impl_->stream), "ncclSend to rank " + std::to_string(to));
    api.check(api.recv(in, bytes, ncclUint8, from, impl_->comm, impl_->stream), "ncclRecv from rank " + std::to_string(from));
    api.check(api.group_end(), "ncclGroupEnd");
    FLEXRT_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

void NcclCommunicator::barrier() {
    impl_->api.check(impl_->api.all_reduce(impl_->scratch, impl_->scratch, 1, ncclFloat32, ncclSum, impl_->comm, impl_->stream),
                     "ncclAllReduce");
    FLEXRT_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

}  // namespace flexrt
