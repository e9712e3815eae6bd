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

}  // namespace

void attention(const uint16_t* q, const SeqKvHalf* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads,
               int64_t head_dim, const uint8_t* mask, int64_t mask_stride, uint16_t* out, void* stream) {
    if (head_dim > 32 * kMaxPerLane)
        throw Error(FLEXRT_STATUS_UNSUPPORTED, "attention: head_dim " + std::to_string(head_dim) + " > " +
                                                   std::to_string(32 * kMaxPerLane));
    const int64_t rows = batch * heads * seq;
    if (rows == 0) return;
    const auto blocks = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
    attention_kernel<<<blocks, 32 * kWarpsPerBlock, 0, static_cast<cudaStream_t>(stream)>>>(
        reinterpret_cast<const __half*>(q), kv, batch, seq, past, heads, head_dim, mask, mask_stride,
        reinterpret_cast<__half*>(out));
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda
