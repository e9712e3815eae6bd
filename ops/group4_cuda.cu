// group4 on the GPU (see group4.hpp): the per-group arithmetic is group4.hpp's, the CPU variant's own.
#include "group4.hpp"

#include "cuda_check.cuh"
#include "group4_device.cuh"

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

// The weights' layout (inner % 8 == 0): a thread per 8 consecutive columns of one group, over the group's
// rows - 8 reciprocals, then per row pair one 8-byte load and two 16-byte stores (the bytes of the output,
// ~4x those of the input, are what bound this kernel). Grid: (columns / 8 / 128, groups, outer).
__global__ void dequantize_columns_kernel(const uint8_t* in_bytes, Group4Layout L, __half* out) {
    const int64_t G = L.group_size, in = L.inner, g = blockIdx.y, o = blockIdx.z;
    const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
    if (c0 >= in) return;
    const auto* pairs = reinterpret_cast<const __half*>(in_bytes + L.pairs_at(o));
    const uint4 sv = *reinterpret_cast<const uint4*>(pairs + (g * 2) * in + c0);
    const uint4 mv = *reinterpret_cast<const uint4*>(pairs + (g * 2 + 1) * in + c0);
    const __half* sh = reinterpret_cast<const __half*>(&sv);
    const __half* mh = reinterpret_cast<const __half*>(&mv);
    Group4Divisor d[8] = {
        group4_divisor(__half2float(sh[0]), __half2float(mh[0])), group4_divisor(__half2float(sh[1]), __half2float(mh[1])),
        group4_divisor(__half2float(sh[2]), __half2float(mh[2])), group4_divisor(__half2float(sh[3]), __half2float(mh[3])),
        group4_divisor(__half2float(sh[4]), __half2float(mh[4])), group4_divisor(__half2float(sh[5]), __half2float(mh[5])),
        group4_divisor(__half2float(sh[6]), __half2float(mh[6])), group4_divisor(__half2float(sh[7]), __half2float(mh[7]))};
    const uint8_t* codes = in_bytes + L.codes_at(o) + (g * G / 2) * in + c0;
    __half* y = out + (o * L.dim + g * G) * in + c0;
    const int64_t rows = min(G, L.dim - g * G);
    for (int64_t r = 0; r < rows; r += 2, codes += in, y += 2 * in) {
        const uint2 raw = *reinterpret_cast<const uint2*>(codes);
        const uint8_t* b = reinterpret_cast<const uint8_t*>(&raw);
        __align__(16) __half even[8], odd[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            even[k] = group4_decode(b[k] >> 4, d[k], L.symmetric);
            odd[k] = group4_decode(b[k] & 0xf, d[k], L.symmetric);
        }
        *reinterpret_cast<uint4*>(y) = *reinterpret_cast<const uint4*>(even);
        if (r + 1 < rows) *reinterpret_cast<uint4*>(y + in) = *reinterpret_cast<const uint4*>(odd);
    }
}

// Rows as blocks of their own (inner == 1: the KV cache's layout), 8 | group_size, dim even: a thread per 8
// consecutive values of a row (4 code bytes, within one group). Grid: (ceil(dim / 8 / 64), outer).
__global__ void dequantize_rows_kernel(const uint8_t* in_bytes, Group4Layout L, __half* out) {
    const int64_t o = blockIdx.y, e0 = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
    if (e0 >= L.dim) return;
    const int64_t g = e0 / L.group_size;
    const auto* pairs = reinterpret_cast<const __half*>(in_bytes + L.pairs_at(o));
    const Group4Divisor d = group4_divisor(__half2float(pairs[g * 2]), __half2float(pairs[g * 2 + 1]));
    const uint32_t raw = *reinterpret_cast<const uint32_t*>(in_bytes + L.codes_at(o) + e0 / 2);
    __align__(16) __half v[8];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const unsigned byte = (raw >> (8 * k)) & 0xff;
        v[2 * k] = group4_decode(byte >> 4, d, L.symmetric);
        v[2 * k + 1] = group4_decode(byte & 0xf, d, L.symmetric);
    }
    __half* y = out + o * L.dim + e0;
    if (e0 + 8 <= L.dim && L.dim % 8 == 0)
        *reinterpret_cast<uint4*>(y) = *reinterpret_cast<const uint4*>(v);
    else
        for (int k = 0; k < 8 && e0 + k < L.dim; ++k) y[k] = v[k];
}

// Any shape: one thread per output element.
__global__ void dequantize1_kernel(const uint8_t* in_bytes, Group4Layout L, __half* out) {
    const int64_t G = L.group_size, in = L.inner;
    const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (id >= L.elements()) return;
    const int64_t c = id % in, r = (id / in) % L.dim, o = id / (in * L.dim), g = r / G;
    const uint8_t byte = in_bytes[L.codes_at(o) + (r / 2) * in + c];
    const auto* pairs = reinterpret_cast<const __half*>(in_bytes + L.pairs_at(o));
    const Group4Divisor d = group4_divisor(__half2float(pairs[(g * 2) * in + c]), __half2float(pairs[(g * 2 + 1) * in + c]));
    out[id] = group4_decode(r % 2 == 0 ? byte >> 4 : byte & 0xf, d, L.symmetric);
}

unsigned blocks(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace

void quantize_group4(const uint16_t* x, const Group4Layout& L, uint8_t* out, int64_t* bad_index, void* stream) {
    const int64_t n = L.outer * L.groups() * L.inner;
    if (n == 0) return;
    quantize_kernel<<<blocks(n, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(reinterpret_cast<const __half*>(x), L, out, bad_index);
    FLEXRT_CUDA_LAUNCH_CHECK();
}

void dequantize_group4(const uint8_t* in, const Group4Layout& L, uint16_t* out, void* stream) {
    if (L.elements() == 0) return;
    auto s = static_cast<cudaStream_t>(stream);
    auto* y = reinterpret_cast<__half*>(out);
    const bool aligned = reinterpret_cast<uintptr_t>(in) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
    if (aligned && L.inner % 8 == 0 && L.groups() <= 65535 && L.outer <= 65535) {
        const dim3 grid(blocks(L.inner / 8, 128), static_cast<unsigned>(L.groups()), static_cast<unsigned>(L.outer));
        dequantize_columns_kernel<<<grid, 128, 0, s>>>(in, L, y);
    } else if (aligned && L.inner == 1 && L.slab_bytes % 4 == 0 && L.group_size % 8 == 0 && L.dim % 2 == 0 && L.outer <= 65535) {
        const dim3 grid(blocks((L.dim + 7) / 8, 64), static_cast<unsigned>(L.outer));
        dequantize_rows_kernel<<<grid, 64, 0, s>>>(in, L, y);
    } else {
        dequantize1_kernel<<<blocks(L.elements(), 256), 256, 0, s>>>(in, L, y);
    }
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda
