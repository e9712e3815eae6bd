// group4 on the GPU (see group4.hpp): the per-group arithmetic is group4.hpp's, the CPU variant's own.
#include "group4.hpp"

#include "cuda_check.cuh"

#include <cuda_fp16.h>

namespace flexrt::ops::cuda {
namespace {

// One thread per group (outer, g, c): consecutive threads take consecutive c, so each element load is coalesced.
__global__ void quantize_kernel(const __half* x, Group4Layout L, uint8_t* out, int64_t* bad) {
    const int64_t ng = L.groups(), G = L.group_size, in = L.inner;
    const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (id >= L.outer * ng * in) return;
    const int64_t c = id % in, g = (id / in) % ng, o = id / (in * ng);
    float lo = INFINITY, hi = -INFINITY, amax = 0.0f;
    for (int64_t e = 0; e < G; ++e) {
        const int64_t r = g * G + e;
        float f = 0.0f;
        if (r < L.dim) {
            const int64_t at = (o * L.dim + r) * in + c;
            f = __half2float(x[at]);
            if (!isfinite(f)) {
                atomicMin(reinterpret_cast<unsigned long long*>(bad), static_cast<unsigned long long>(at));
                return;
            }
        }
        lo = fminf(lo, f), hi = fmaxf(hi, f), amax = fmaxf(amax, fabsf(f));
    }
    const float mn = L.symmetric ? 0.0f : lo;
    const __half scale_h = __float2half_rn(group4_scale(lo, hi, amax, L.symmetric));
    const float scale = __half2float(scale_h);  // codes are made with the scale that is stored
    auto* pairs = reinterpret_cast<__half*>(out + L.pairs_at(o));
    pairs[(g * 2) * in + c] = scale_h;
    pairs[(g * 2 + 1) * in + c] = __float2half_rn(mn);
    if (L.slab_bytes && g == 0 && c == 0)  // the slab's tail padding: deterministic bytes, as the CPU writes
        for (uint64_t b = L.pairs_at(o) + L.pair_bytes(); b < static_cast<uint64_t>((o + 1) * L.slab_bytes); ++b) out[b] = 0;
    for (int64_t e = 0; e < G; e += 2) {
        unsigned q[2];
        for (int t = 0; t < 2; ++t) {
            const int64_t r = g * G + e + t;
            q[t] = group4_code(r < L.dim ? __half2float(x[(o * L.dim + r) * in + c]) : 0.0f, scale, mn, L.symmetric);
        }
        out[L.codes_at(o) + ((g * G + e) / 2) * in + c] = static_cast<uint8_t>(q[0] << 4 | q[1]);
    }
}

__device__ __forceinline__ __half decode(unsigned code, float scale, float mn, bool symmetric) {
    return __float2half_rn(group4_value(code, scale, mn, symmetric));
}

// A block per (128 columns, group, outer): first the 16 values each code takes in each column (one division
// per table entry, not per element: the IEEE division is what bounds this kernel), then 4 packed bytes a
// thread, looked up, 8 outputs written as two 8-byte stores. inner % 4 == 0.
constexpr int kTableCols = 128;
__global__ void dequantize_table_kernel(const uint8_t* in_bytes, Group4Layout L, __half* out) {
    __shared__ __half table[kTableCols * 16];
    const int64_t G = L.group_size, in = L.inner;
    const int64_t c0 = static_cast<int64_t>(blockIdx.x) * kTableCols, g = blockIdx.y, o = blockIdx.z;
    const auto* pairs = reinterpret_cast<const __half*>(in_bytes + L.pairs_at(o));
    for (int i = threadIdx.x; i < kTableCols * 16; i += blockDim.x) {
        const int64_t c = c0 + i / 16;
        if (c < in)
            table[i] = decode(i % 16, __half2float(pairs[(g * 2) * in + c]), __half2float(pairs[(g * 2 + 1) * in + c]), L.symmetric);
    }
    __syncthreads();
    const int64_t cols = in - c0 < kTableCols ? in - c0 : kTableCols, quads = cols / 4, rows = G / 2;
    for (int64_t i = threadIdx.x; i < rows * quads; i += blockDim.x) {
        const int64_t t = g * rows + i / quads, cc = (i % quads) * 4, r0 = 2 * t;
        if (r0 >= L.dim) continue;
        const uchar4 b = *reinterpret_cast<const uchar4*>(in_bytes + L.codes_at(o) + t * in + c0 + cc);
        const unsigned bytes[4] = {b.x, b.y, b.z, b.w};
        __align__(8) __half hi[4], lo[4];
        for (int k = 0; k < 4; ++k) {
            hi[k] = table[(cc + k) * 16 + (bytes[k] >> 4)];
            lo[k] = table[(cc + k) * 16 + (bytes[k] & 0xf)];
        }
        *reinterpret_cast<uint2*>(out + (o * L.dim + r0) * in + c0 + cc) = *reinterpret_cast<const uint2*>(hi);
        if (r0 + 1 < L.dim) *reinterpret_cast<uint2*>(out + (o * L.dim + r0 + 1) * in + c0 + cc) = *reinterpret_cast<const uint2*>(lo);
    }
}

// Any shape: one thread per output element.
__global__ void dequantize1_kernel(const uint8_t* in_bytes, Group4Layout L, __half* out) {
    const int64_t G = L.group_size, in = L.inner;
    const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (id >= L.elements()) return;
    const int64_t c = id % in, r = (id / in) % L.dim, o = id / (in * L.dim), g = r / G;
    const uint8_t byte = in_bytes[L.codes_at(o) + (r / 2) * in + c];
    const auto* pairs = reinterpret_cast<const __half*>(in_bytes + L.pairs_at(o));
    const float scale = __half2float(pairs[(g * 2) * in + c]), mn = __half2float(pairs[(g * 2 + 1) * in + c]);
    out[id] = decode(r % 2 == 0 ? byte >> 4 : byte & 0xf, scale, mn, L.symmetric);
}

unsigned blocks(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace

void quantize_group4(const uint16_t* x, const Group4Layout& L, uint8_t* out, int64_t* bad_index, void* stream) {
    const int64_t n = L.outer * L.groups() * L.inner;
    if (n == 0) return;
    quantize_kernel<<<blocks(n, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(reinterpret_cast<const __half*>(x), L, out,
                                                                                   bad_index);
    FLEXRT_CUDA_LAUNCH_CHECK();
}

void dequantize_group4(const uint8_t* in, const Group4Layout& L, uint16_t* out, void* stream) {
    if (L.elements() == 0) return;
    auto s = static_cast<cudaStream_t>(stream);
    if (L.inner % 4 == 0 && L.groups() <= 65535 && L.outer <= 65535) {
        const dim3 grid(static_cast<unsigned>((L.inner + kTableCols - 1) / kTableCols), static_cast<unsigned>(L.groups()),
                        static_cast<unsigned>(L.outer));
        dequantize_table_kernel<<<grid, 256, 0, s>>>(in, L, reinterpret_cast<__half*>(out));
    } else {
        dequantize1_kernel<<<blocks(L.elements(), 256), 256, 0, s>>>(in, L, reinterpret_cast<__half*>(out));
    }
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda
