#include "ops_cuda.hpp"

#include "cuda_check.cuh"

#include <cuda_fp16.h>

#include <cfloat>

namespace flexrt::ops::cuda {
namespace {

constexpr int kThreads = 256;

// One block per row; ties go to the smaller index, as std::max_element does on the CPU.
__global__ void argmax_kernel(const __half* logits, int64_t vocab, int32_t* ids) {
    __shared__ float best_v[kThreads];
    __shared__ int32_t best_i[kThreads];
    const __half* row = logits + blockIdx.x * vocab;
    float bv = -FLT_MAX;
    int32_t bi = INT32_MAX;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float v = __half2float(row[i]);
        if (v > bv) bv = v, bi = static_cast<int32_t>(i);  // strided ascending: the first max wins per thread
    }
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) {
            const float ov = best_v[threadIdx.x + stride];
            const int32_t oi = best_i[threadIdx.x + stride];
            if (ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < best_i[threadIdx.x]))
                best_v[threadIdx.x] = ov, best_i[threadIdx.x] = oi;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) ids[blockIdx.x] = best_i[0];
}

}  // namespace

void argmax(const uint16_t* logits, int64_t rows, int64_t vocab, int32_t* ids, void* stream) {
    if (rows == 0) return;
    argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        reinterpret_cast<const __half*>(logits), vocab, ids);
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda
