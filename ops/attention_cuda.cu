#include "ops_cuda.hpp"

#include "cuda_check.cuh"

#include <cuda_fp16.h>

#include <cfloat>

namespace flexrt::ops::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kMaxPerLane = 8;  // head_dim <= 256

__device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// One warp per (sequence, head, query): the keys stream past with an online softmax (running max, sum and
// weighted values in registers), so no score row is ever stored. Lane l holds elements l, l + 32, ... of
// the head. Masked keys weigh nothing; a query with no key to see (a pad row) averages all keys uniformly,
// as the CPU variant's lowest-float fill does.
__global__ void attention_kernel(const __half* q, const SeqKvHalf* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads,
                                 int64_t hd, const uint8_t* mask, int64_t mask_stride, __half* out) {
    const int lane = threadIdx.x % 32;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;  // (b, n, s)
    if (row >= batch * heads * seq) return;
    const int64_t s = row % seq, n = (row / seq) % heads, b = row / (seq * heads);
    const int64_t h = heads * hd, keys = past + seq;
    const SeqKvHalf sk = kv[b];
    const uint8_t* m = mask + b * mask_stride;
    float qv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
        const int64_t i = lane + 32 * e;
        qv[e] = i < hd ? __half2float(q[(b * seq + s) * h + n * hd + i]) : 0.0f;
        acc[e] = 0.0f;
    }
    auto key_row = [&](int64_t t, bool value) -> const __half* {
        const uint16_t* base = t < past ? (value ? sk.past_v : sk.past_k) + t * sk.past_stride
                                        : (value ? sk.new_v : sk.new_k) + (t - past) * sk.new_stride;
        return reinterpret_cast<const __half*>(base) + n * hd;
    };
    float mx = -FLT_MAX, sum = 0.0f;
    bool any = false;
    for (int64_t t = 0; t <= past + s; ++t) {
        if (!m[t]) continue;
        any = true;
        const __half* kr = key_row(t, false);
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < kMaxPerLane; ++e) {
            const int64_t i = lane + 32 * e;
            if (i < hd) d += qv[e] * __half2float(kr[i]);
        }
        d = warp_sum(d);
        const float nm = fmaxf(mx, d), scale = __expf(mx - nm), p = __expf(d - nm);
        sum = sum * scale + p;
        const __half* vr = key_row(t, true);
#pragma unroll
        for (int e = 0; e < kMaxPerLane; ++e) {
            const int64_t i = lane + 32 * e;
            if (i < hd) acc[e] = acc[e] * scale + p * __half2float(vr[i]);
        }
        mx = nm;
    }
    if (!any) {  // nothing visible: the uniform average over every key
        for (int64_t t = 0; t < keys; ++t) {
            const __half* vr = key_row(t, true);
#pragma unroll
            for (int e = 0; e < kMaxPerLane; ++e) {
                const int64_t i = lane + 32 * e;
                if (i < hd) acc[e] += __half2float(vr[i]);
            }
        }
        sum = static_cast<float>(keys);
    }
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
        const int64_t i = lane + 32 * e;
        if (i < hd) out[(b * seq + s) * h + n * hd + i] = __float2half(acc[e] / sum);
    }
}

// Prefill (seq > 1): a block holds kTileQ consecutive queries of one (sequence, head), a warp each, and
// streams the keys in tiles of 32 through shared memory, so every K and V row is read from device memory
// once per block instead of once per query. In a tile, lane t scores key t against its warp's query; the
// online softmax then folds the tile in with one max and one sum per warp. K rows are padded by one word
// (lanes read different rows at the same column).
constexpr int kTileQ = 8, kTileK = 32;

__global__ void attention_tiled_kernel(const __half* q, const SeqKvHalf* kv, int64_t seq, int64_t past, int64_t heads, int64_t hd,
                                       const uint8_t* mask, int64_t mask_stride, __half* out) {
    extern __shared__ float smem[];
    const int64_t kpad = hd + 1;                          // floats per K row in shared memory
    float* ks = smem;                                     // (kTileK, kpad)
    float* vs = ks + kTileK * kpad;                       // (kTileK, hd)
    float* qs = vs + kTileK * hd;                         // (kTileQ, hd)
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t tiles_q = (seq + kTileQ - 1) / kTileQ;
    const int64_t qt = blockIdx.x % tiles_q, n = (blockIdx.x / tiles_q) % heads, b = blockIdx.x / (tiles_q * heads);
    const int64_t s = qt * kTileQ + warp, h = heads * hd;
    const bool active = s < seq;
    const SeqKvHalf sk = kv[b];
    const uint8_t* m = mask + b * mask_stride;
    for (int64_t e = lane; e < hd; e += 32) qs[warp * hd + e] = active ? __half2float(q[(b * seq + s) * h + n * hd + e]) : 0.0f;
    float acc[kMaxPerLane];
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) acc[e] = 0.0f;
    float mx = -FLT_MAX, sum = 0.0f;
    const int64_t last_s = min(seq - 1, qt * kTileQ + kTileQ - 1), keys_needed = past + last_s + 1;
    auto row = [&](int64_t t, bool value) -> const __half* {
        const uint16_t* base = t < past ? (value ? sk.past_v : sk.past_k) + t * sk.past_stride
                                        : (value ? sk.new_v : sk.new_k) + (t - past) * sk.new_stride;
        return reinterpret_cast<const __half*>(base) + n * hd;
    };
    for (int64_t t0 = 0; t0 < keys_needed; t0 += kTileK) {
        __syncthreads();  // the previous tile is no longer read
        for (int64_t i = threadIdx.x; i < kTileK * hd; i += blockDim.x) {
            const int64_t r = i / hd, c = i % hd, t = t0 + r;
            const bool in = t < keys_needed;
            ks[r * kpad + c] = in ? __half2float(row(t, false)[c]) : 0.0f;
            vs[r * hd + c] = in ? __half2float(row(t, true)[c]) : 0.0f;
        }
        __syncthreads();
        if (!active) continue;
        const int64_t t = t0 + lane;
        const bool allowed = t < keys_needed && t <= past + s && m[t];
        float score = -INFINITY;
        if (allowed) {
            float d = 0.0f;
            for (int64_t e = 0; e < hd; ++e) d += qs[warp * hd + e] * ks[lane * kpad + e];
            score = d;
        }
        float tile_max = score;
        for (int o = 16; o > 0; o >>= 1) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, o));
        const float nm = fmaxf(mx, tile_max);
        const float p = allowed ? __expf(score - nm) : 0.0f, scale = __expf(mx - nm);
        float psum = p;
        for (int o = 16; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
        sum = sum * scale + psum;
#pragma unroll
        for (int e = 0; e < kMaxPerLane; ++e) acc[e] *= scale;
        for (int tt = 0; tt < kTileK; ++tt) {
            const float pt = __shfl_sync(0xffffffffu, p, tt);
            if (pt == 0.0f) continue;  // uniform across the warp: no divergence
#pragma unroll
            for (int e = 0; e < kMaxPerLane; ++e) {
                const int64_t i = lane + 32 * e;
                if (i < hd) acc[e] += pt * vs[tt * hd + i];
            }
        }
        mx = nm;
    }
    if (!active) return;
    if (sum == 0.0f) {  // nothing visible (a pad query): the uniform average over every key, as the CPU does
        const int64_t keys = past + seq;
        for (int64_t t = 0; t < keys; ++t) {
            const __half* vr = row(t, true);
#pragma unroll
            for (int e = 0; e < kMaxPerLane; ++e) {
                const int64_t i = lane + 32 * e;
                if (i < hd) acc[e] += __half2float(vr[i]);
            }
        }
        sum = static_cast<float>(keys);
    }
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
        const int64_t i = lane + 32 * e;
        if (i < hd) out[(b * seq + s) * h + n * hd + i] = __float2half(acc[e] / sum);
    }
}

}  // namespace

void attention(const uint16_t* q, const SeqKvHalf* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads,
               int64_t head_dim, const uint8_t* mask, int64_t mask_stride, uint16_t* out, void* stream) {
    if (head_dim > 32 * kMaxPerLane)
        throw Error(FLEXRT_STATUS_UNSUPPORTED, "attention: head_dim " + std::to_string(head_dim) + " > " +
                                                   std::to_string(32 * kMaxPerLane));
    const int64_t rows = batch * heads * seq;
    if (rows == 0) return;
    if (seq > 1) {  // prefill: the tiled kernel
        const int64_t tiles_q = (seq + kTileQ - 1) / kTileQ;
        const size_t shared = sizeof(float) * static_cast<size_t>(kTileK * (head_dim + 1) + kTileK * head_dim + kTileQ * head_dim);
        if (shared > 48 * 1024)  // above the default limit a kernel must ask (head_dim > 160)
            FLEXRT_CUDA_CHECK(cudaFuncSetAttribute(attention_tiled_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   static_cast<int>(shared)));
        attention_tiled_kernel<<<static_cast<unsigned>(batch * heads * tiles_q), 32 * kTileQ, shared,
                                 static_cast<cudaStream_t>(stream)>>>(reinterpret_cast<const __half*>(q), kv, seq, past, heads,
                                                                      head_dim, mask, mask_stride, reinterpret_cast<__half*>(out));
        FLEXRT_CUDA_LAUNCH_CHECK();
        return;
    }
    const auto blocks = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
    attention_kernel<<<blocks, 32 * kWarpsPerBlock, 0, static_cast<cudaStream_t>(stream)>>>(
        reinterpret_cast<const __half*>(q), kv, batch, seq, past, heads, head_dim, mask, mask_stride,
        reinterpret_cast<__half*>(out));
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda
