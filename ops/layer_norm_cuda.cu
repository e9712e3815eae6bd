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

// One block per row: mean, then the variance around it (two passes: no cancellation), then the output. With
// h a multiple of 8 and 16-byte aligned rows, a thread reads 8 values at a time (the scalar loop ran at a
// third of the device's bandwidth in W1's prefill).
template <bool WIDE>
__global__ void layer_norm_kernel(const __half* x, int64_t h, const __half* w, const __half* b, float eps, __half* y) {
    __shared__ float shared[32];
    const __half* xr = x + blockIdx.x * h;
    __half* yr = y + blockIdx.x * h;
    constexpr int V = WIDE ? 8 : 1;
    auto load = [](const __half* p, int64_t i, float(&f)[V]) {
        if constexpr (WIDE) {
            const uint4 u = *reinterpret_cast<const uint4*>(p + i);
            const __half* hv = reinterpret_cast<const __half*>(&u);
#pragma unroll
            for (int e = 0; e < V; ++e) f[e] = __half2float(hv[e]);
        } else {
            f[0] = __half2float(p[i]);
        }
    };
    float f[V];
    float s = 0;
    for (int64_t i = threadIdx.x * V; i < h; i += blockDim.x * V) {
        load(xr, i, f);
#pragma unroll
        for (int e = 0; e < V; ++e) s += f[e];
    }
    const float mean = block_sum(s, shared) / static_cast<float>(h);
    float v = 0;
    for (int64_t i = threadIdx.x * V; i < h; i += blockDim.x * V) {
        load(xr, i, f);
#pragma unroll
        for (int e = 0; e < V; ++e) v += (f[e] - mean) * (f[e] - mean);
    }
    const float inv = rsqrtf(block_sum(v, shared) / static_cast<float>(h) + eps);
    for (int64_t i = threadIdx.x * V; i < h; i += blockDim.x * V) {
        float fw[V], fb[V];
        load(xr, i, f), load(w, i, fw), load(b, i, fb);
        if constexpr (WIDE) {
            uint4 u;
            __half* hv = reinterpret_cast<__half*>(&u);
#pragma unroll
            for (int e = 0; e < V; ++e) hv[e] = __float2half((f[e] - mean) * inv * fw[e] + fb[e]);
            *reinterpret_cast<uint4*>(yr + i) = u;
        } else {
            yr[i] = __float2half((f[0] - mean) * inv * fw[0] + fb[0]);
        }
    }
}

}  // namespace

void layer_norm(const uint16_t* x, int64_t rows, int64_t h, const uint16_t* w, const uint16_t* b, double eps, uint16_t* y, void* stream) {
    if (rows == 0) return;
    const auto* xh = reinterpret_cast<const __half*>(x);
    const auto* wh = reinterpret_cast<const __half*>(w);
    const auto* bh = reinterpret_cast<const __half*>(b);
    auto* yh = reinterpret_cast<__half*>(y);
    const bool wide = h % 8 == 0 && ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w) | reinterpret_cast<uintptr_t>(b) |
                                      reinterpret_cast<uintptr_t>(y)) &
                                     15) == 0;
    auto s = static_cast<cudaStream_t>(stream);
    if (wide)
        layer_norm_kernel<true><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(xh, h, wh, bh, static_cast<float>(eps), yh);
    else
        layer_norm_kernel<false><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(xh, h, wh, bh, static_cast<float>(eps), yh);
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda
