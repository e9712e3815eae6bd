#include "ops_cuda.hpp"

#include "cuda_check.cuh"

#include <cuda_fp16.h>

namespace flexrt::ops::cuda {
namespace {

__global__ void embed_tokens_kernel(const int32_t* ids, const __half* w, int64_t vocab, int64_t dim, __half* out, int* bad) {
    const int64_t r = blockIdx.x;
    const int32_t id = ids[r];
    if (id < 0 || id >= vocab) {  // reported after the launch; the row is left untouched
        if (threadIdx.x == 0) atomicOr(bad, kBadTokenId);
        return;
    }
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) out[r * dim + i] = w[id * dim + i];
}

// One block per sequence: thread 0 counts real tokens (the mask is at most a few thousand bytes), then the
// block adds each token's position row.
__global__ void add_positions_kernel(__half* x, int64_t seq, const uint8_t* mask, int64_t mask_stride, int64_t mask_len,
                                     const __half* w_pos, int64_t n_pos, int64_t h, int* bad) {
    extern __shared__ int pos[];
    const int64_t b = blockIdx.x;
    const uint8_t* m = mask + b * mask_stride;
    if (threadIdx.x == 0) {
        int real = 0;
        for (int64_t c = 0; c < mask_len - seq; ++c) real += m[c];
        for (int64_t s = 0; s < seq; ++s) {
            const int64_t col = mask_len - seq + s;
            real += m[col];
            pos[s] = m[col] ? real + 1 : 1;
            if (pos[s] >= n_pos) atomicOr(bad, kBadPosition);
        }
    }
    __syncthreads();
    for (int64_t s = 0; s < seq; ++s) {
        if (pos[s] >= n_pos) continue;
        __half* row = x + (b * seq + s) * h;
        const __half* p = w_pos + static_cast<int64_t>(pos[s]) * h;
        for (int64_t i = threadIdx.x; i < h; i += blockDim.x) row[i] = __float2half(__half2float(row[i]) + __half2float(p[i]));
    }
}

struct Flag {
    int* d = nullptr;
    Flag() { FLEXRT_CUDA_CHECK(cudaMalloc(&d, sizeof(int))); }
    ~Flag() { cudaFree(d); }
};

// The caller's flag, or one of our own read back (and thrown) when the op is done.
template <typename Launch>
void with_flag(int* caller_flag, cudaStream_t s, int64_t vocab, int64_t n_pos, Launch&& launch) {
    if (caller_flag) {
        launch(caller_flag);
        return;
    }
    Flag flag;
    FLEXRT_CUDA_CHECK(cudaMemsetAsync(flag.d, 0, sizeof(int), s));
    launch(flag.d);
    int v = 0;
    FLEXRT_CUDA_CHECK(cudaMemcpyAsync(&v, flag.d, sizeof v, cudaMemcpyDeviceToHost, s));
    FLEXRT_CUDA_CHECK(cudaStreamSynchronize(s));
    throw_input_errors(v, vocab, n_pos);
}

}  // namespace

void throw_input_errors(int flags, int64_t vocab, int64_t n_pos) {
    if (flags & kBadTokenId)
        throw Error(FLEXRT_STATUS_INVALID_ARGUMENT, "a token id is outside the vocabulary of " + std::to_string(vocab));
    if (flags & kBadPosition)
        throw Error(FLEXRT_STATUS_INVALID_ARGUMENT, "a position is beyond the model's " + std::to_string(n_pos - 2) + " learned positions");
}

void embed_tokens(const int32_t* ids, int64_t rows, const uint16_t* w_tok, int64_t vocab, int64_t dim, uint16_t* out, void* stream,
                  int* error_flags) {
    if (rows == 0) return;
    auto s = static_cast<cudaStream_t>(stream);
    with_flag(error_flags, s, vocab, 0, [&](int* flag) {
        embed_tokens_kernel<<<static_cast<unsigned>(rows), 256, 0, s>>>(ids, reinterpret_cast<const __half*>(w_tok), vocab, dim,
                                                                        reinterpret_cast<__half*>(out), flag);
        FLEXRT_CUDA_LAUNCH_CHECK();
    });
}

void add_positions(uint16_t* x, int64_t batch, int64_t seq, const uint8_t* mask, int64_t mask_stride, int64_t mask_len,
                   const uint16_t* w_pos, int64_t n_pos, int64_t h, void* stream, int* error_flags) {
    if (batch == 0) return;
    auto s = static_cast<cudaStream_t>(stream);
    with_flag(error_flags, s, 0, n_pos, [&](int* flag) {
        add_positions_kernel<<<static_cast<unsigned>(batch), 256, static_cast<size_t>(seq) * sizeof(int), s>>>(
            reinterpret_cast<__half*>(x), seq, mask, mask_stride, mask_len, reinterpret_cast<const __half*>(w_pos), n_pos, h, flag);
        FLEXRT_CUDA_LAUNCH_CHECK();
    });
}

}  // namespace flexrt::ops::cuda
