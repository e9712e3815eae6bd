#include "ops_cuda.hpp"

#include "cuda_check.cuh"

#include <cuda_fp16.h>

namespace flexrt::ops::cuda {
namespace {

constexpr int kThreads = 256;

__device__ float block_sum(float v, float* shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // shared is reused between calls
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < blockDim.x / 32 ? shared[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// One block per row: mean, then the variance around it (two passes: no cancellation), then the output.
__global__ void layer_norm_kernel(const __half* x, int64_t h, const __half* w, const __half* b, float eps, __half* y) {
    __shared__ float shared[32];
    const __half* xr = x + blockIdx.x * h;
    __half* yr = y + blockIdx.x * h;
    float s = 0;
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x) s += __half2float(xr[i]);
    const float mean = block_sum(s, shared) / static_cast<float>(h);
    float v = 0;
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
        const float d = __half2float(xr[i]) - mean;
        v += d * d;
    }
    const float inv = rsqrtf(block_sum(v, shared) / static_cast<float>(h) + eps);
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x)
        yr[i] = __float2half((__half2float(xr[i]) - mean) * inv * __half2float(w[i]) + __half2float(b[i]));
}

}  // namespace

void layer_norm(const uint16_t* x, int64_t rows, int64_t h, const uint16_t* w, const uint16_t* b, double eps, uint16_t* y,
                void* stream) {
    if (rows == 0) return;
    layer_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        reinterpret_cast<const __half*>(x), h, reinterpret_cast<const __half*>(w), reinterpret_cast<const __half*>(b),
        static_cast<float>(eps), reinterpret_cast<__half*>(y));
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda
