// Prefill attention on the tensor cores, flash-attention style with every intermediate in registers: a block of
// 4 warps takes 64 queries of one (sequence, head), each warp 16 of them; tiles of 64 keys and values stream
// through shared memory (cp.async, double-buffered) while the warps compute S = Q K^T with mma.sync
// m16n8k16 (fp32 accumulators), mask it (causal, padding), update the running max and sum of each row, and
// feed the probabilities - rounded to fp16, the accumulator layout reused as the next product's A operand -
// into O += P V. Neither S nor P ever reaches memory, unlike the WMMA kernel in attention_cuda.cu, which
// passes both through shared memory and ran at a fraction of the GEMM rate.
#include "ops_cuda.hpp"

#include "cuda_check.cuh"

#include <cuda_fp16.h>

#include <cfloat>

namespace flexrt::ops::cuda {
namespace {

constexpr int kRows = 64, kKeys = 64, kThreads = 128;

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// d += a b: a 16x16 fp16 (row), b 16x8 fp16 (col), d 16x8 fp32.
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
}

// Row t of one sequence's keys (or values) at head n: cached rows first, then this step's.
__device__ __forceinline__ const __half* row_of(const SeqKvHalf& sk, int64_t past, int64_t t, bool value, int64_t n, int hd) {
    const uint16_t* base =
        t < past ? (value ? sk.past_v : sk.past_k) + t * sk.past_stride : (value ? sk.new_v : sk.new_k) + (t - past) * sk.new_stride;
    return reinterpret_cast<const __half*>(base) + n * hd;
}

template <int HD>
struct Smem {
    static constexpr int kLd = HD + 8;  // halves: rows 16 bytes apart mod 128, so ldmatrix reads no bank twice
    static constexpr size_t kTile = static_cast<size_t>(kKeys) * kLd;                         // halves
    static constexpr size_t kBytes = (kRows * kLd + 4 * kTile) * sizeof(__half) + 2 * kKeys;  // Q, 2 x (K, V), 2 masks
};

template <int HD>
__global__ void __launch_bounds__(kThreads, 2) flash_prefill_kernel(const __half* q, const SeqKvHalf* kv, int64_t seq, int64_t past,
                                                                    int64_t heads, const uint8_t* mask, int64_t mask_stride, __half* out) {
    using S = Smem<HD>;
    constexpr int LD = S::kLd, KT = HD / 16, NT = HD / 8;
    extern __shared__ __align__(128) unsigned char sm[];
    __half* Qs = reinterpret_cast<__half*>(sm);
    __half* Ks = Qs + kRows * LD;  // [2][kKeys * LD]
    __half* Vs = Ks + 2 * S::kTile;
    uint8_t* Vis = reinterpret_cast<uint8_t*>(Vs + 2 * S::kTile);  // [2][kKeys]: key in range and not padding
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 3, i8 = lane & 7;
    const int64_t tiles_q = (seq + kRows - 1) / kRows;
    // The longest query tiles (the most keys under the causal mask) first, so the tail of the grid is short.
    const int64_t qt = tiles_q - 1 - static_cast<int64_t>(blockIdx.x % tiles_q);
    const int64_t n = (blockIdx.x / tiles_q) % heads, b = blockIdx.x / (tiles_q * heads);
    const int64_t q0 = qt * kRows, h = heads * HD;
    const SeqKvHalf sk = kv[b];
    const uint8_t* m = mask + b * mask_stride;
    const int64_t keys_needed = past + min(seq, q0 + kRows);

    auto load_tile = [&](int64_t t0, int buf) {
        __half* kd = Ks + buf * S::kTile;
        __half* vd = Vs + buf * S::kTile;
        for (int i = tid; i < kKeys * (HD / 8); i += kThreads) {
            const int r = i / (HD / 8), c = (i % (HD / 8)) * 8;
            const int64_t t = t0 + r;
            if (t < keys_needed) {
                cp_async16(kd + r * LD + c, row_of(sk, past, t, false, n, HD) + c);
                cp_async16(vd + r * LD + c, row_of(sk, past, t, true, n, HD) + c);
            } else {  // zeros, not stale values: a masked probability is 0 and 0 * NaN would not be
                *reinterpret_cast<uint4*>(kd + r * LD + c) = make_uint4(0, 0, 0, 0);
                *reinterpret_cast<uint4*>(vd + r * LD + c) = make_uint4(0, 0, 0, 0);
            }
        }
        if (tid < kKeys) Vis[buf * kKeys + tid] = t0 + tid < keys_needed && m[t0 + tid];
        cp_async_commit();
    };

    load_tile(0, 0);
    for (int i = tid; i < kRows * (HD / 8); i += kThreads) {
        const int r = i / (HD / 8), c = (i % (HD / 8)) * 8;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (q0 + r < seq) val = *reinterpret_cast<const uint4*>(q + (b * seq + q0 + r) * h + n * HD + c);
        *reinterpret_cast<uint4*>(Qs + r * LD + c) = val;
    }
    __syncthreads();
    uint32_t qf[KT][4];  // this warp's 16 query rows as mma A fragments
#pragma unroll
    for (int kk = 0; kk < KT; ++kk) ldmatrix_x4(qf[kk], Qs + (warp * 16 + i8 + (g & 1) * 8) * LD + kk * 16 + (g >> 1) * 8);

    // This thread's two rows (fragment rows lane / 4 and lane / 4 + 8) as query indices.
    const int64_t row0 = q0 + warp * 16 + (lane >> 2), row1 = row0 + 8;
    float o[NT][4];
#pragma unroll
    for (int j = 0; j < NT; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float mx0 = -INFINITY, mx1 = -INFINITY, sum0 = 0.0f, sum1 = 0.0f;  // sums: this thread's columns only, until the end

    const int64_t tiles = (keys_needed + kKeys - 1) / kKeys;
    for (int64_t it = 0; it < tiles; ++it) {
        const int buf = static_cast<int>(it & 1);
        if (it + 1 < tiles) {
            load_tile((it + 1) * kKeys, buf ^ 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const __half* kb = Ks + buf * S::kTile;
        const __half* vb = Vs + buf * S::kTile;
        const uint8_t* vis = Vis + buf * kKeys;
        const int64_t t0 = it * kKeys;

        float s[kKeys / 8][4];
#pragma unroll
        for (int j = 0; j < kKeys / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KT; ++kk)
#pragma unroll
            for (int np = 0; np < kKeys / 16; ++np) {
                uint32_t r[4];
                ldmatrix_x4(r, kb + (np * 16 + i8 + (g >> 1) * 8) * LD + kk * 16 + (g & 1) * 8);
                mma16816(s[2 * np], qf[kk], r[0], r[1]);
                mma16816(s[2 * np + 1], qf[kk], r[2], r[3]);
            }

        // Mask, then the online softmax of rows row0 and row1 (a row's 64 scores lie in the 4 threads of a quad).
        float tmax0 = -INFINITY, tmax1 = -INFINITY;
#pragma unroll
        for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int col = j * 8 + 2 * (lane & 3) + (e & 1);
                const int64_t row = e < 2 ? row0 : row1, t = t0 + col;
                const bool ok = vis[col] && row < seq && t <= past + row;
                s[j][e] = ok ? s[j][e] : -INFINITY;
            }
#pragma unroll
        for (int j = 0; j < kKeys / 8; ++j) tmax0 = fmaxf(tmax0, fmaxf(s[j][0], s[j][1])), tmax1 = fmaxf(tmax1, fmaxf(s[j][2], s[j][3]));
#pragma unroll
        for (int off = 1; off <= 2; off <<= 1) {
            tmax0 = fmaxf(tmax0, __shfl_xor_sync(0xffffffffu, tmax0, off));
            tmax1 = fmaxf(tmax1, __shfl_xor_sync(0xffffffffu, tmax1, off));
        }
        const float new0 = fmaxf(mx0, tmax0), new1 = fmaxf(mx1, tmax1);
        // Nothing visible yet in a row: keep it at zero (no exp(-inf - -inf)).
        const float corr0 = new0 == -INFINITY ? 1.0f : __expf(mx0 - new0), corr1 = new1 == -INFINITY ? 1.0f : __expf(mx1 - new1);
        mx0 = new0, mx1 = new1;
        sum0 *= corr0, sum1 *= corr1;
        uint32_t pf[kKeys / 16][4];  // P as the A operand of O += P V, 16 keys per fragment
#pragma unroll
        for (int j = 0; j < kKeys / 8; ++j) {
            const float p0 = s[j][0] == -INFINITY ? 0.0f : __expf(s[j][0] - new0);
            const float p1 = s[j][1] == -INFINITY ? 0.0f : __expf(s[j][1] - new0);
            const float p2 = s[j][2] == -INFINITY ? 0.0f : __expf(s[j][2] - new1);
            const float p3 = s[j][3] == -INFINITY ? 0.0f : __expf(s[j][3] - new1);
            sum0 += p0 + p1, sum1 += p2 + p3;
            pf[j / 2][(j & 1) * 2 + 0] = pack_half2(p0, p1);  // rows lane / 4: a0 (keys 0-7) or a2 (keys 8-15)
            pf[j / 2][(j & 1) * 2 + 1] = pack_half2(p2, p3);  // rows lane / 4 + 8: a1 or a3
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) o[j][0] *= corr0, o[j][1] *= corr0, o[j][2] *= corr1, o[j][3] *= corr1;
#pragma unroll
        for (int kk = 0; kk < kKeys / 16; ++kk)
#pragma unroll
            for (int np = 0; np < NT / 2; ++np) {
                uint32_t r[4];
                ldmatrix_x4_trans(r, vb + (kk * 16 + i8 + (g & 1) * 8) * LD + np * 16 + (g >> 1) * 8);
                mma16816(o[2 * np], pf[kk], r[0], r[1]);
                mma16816(o[2 * np + 1], pf[kk], r[2], r[3]);
            }
        __syncthreads();  // this buffer is refilled by the next iteration's prefetch
    }

#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, off);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, off);
    }
    // A pad query (nothing visible: left padding) gets the uniform average of every key's value, as the CPU does (and
    // HF, whose softmax of an all-masked row is uniform): finite, though no real token reads it. The block computes
    // that average once, all its threads over the keys (a column pair and a key stride each, then a fixed-order sum):
    // each pad row's threads looping over every key made a padded prefill ~40x slower (W1's shape with BOS-only
    // prompts: 4.9 s of attention against 0.12 s).
    constexpr int kPairs = HD / 2, kStride = kThreads / kPairs;
    float* mean = reinterpret_cast<float*>(Ks) + kStride * HD;  // the K and V tiles are dead: [kStride][HD] partial sums, then this
    if (__syncthreads_or((row0 < seq && sum0 == 0.0f) || (row1 < seq && sum1 == 0.0f))) {
        float* part = reinterpret_cast<float*>(Ks);
        const int cp = tid % kPairs, k0 = tid / kPairs;
        const int64_t keys = past + seq;
        if (k0 < kStride) {
            float a0 = 0.0f, a1 = 0.0f;
            for (int64_t t = k0; t < keys; t += kStride) {
                const __half2 v = *reinterpret_cast<const __half2*>(row_of(sk, past, t, true, n, HD) + 2 * cp);
                a0 += __low2float(v), a1 += __high2float(v);
            }
            part[k0 * HD + 2 * cp] = a0, part[k0 * HD + 2 * cp + 1] = a1;
        }
        __syncthreads();
        for (int c = tid; c < HD; c += kThreads) {
            float total = 0.0f;
            for (int r = 0; r < kStride; ++r) total += part[r * HD + c];
            mean[c] = total / static_cast<float>(keys);
        }
        __syncthreads();
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int64_t row = half ? row1 : row0;
        const float sum = half ? sum1 : sum0;
        if (row >= seq) continue;
        __half* dst = out + (b * seq + row) * h + n * HD;
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            const int col = j * 8 + 2 * (lane & 3);
            float v0, v1;
            if (sum > 0.0f) {
                v0 = o[j][2 * half] / sum, v1 = o[j][2 * half + 1] / sum;
            } else {  // a pad query: the average above
                v0 = mean[col], v1 = mean[col + 1];
            }
            *reinterpret_cast<__half2*>(dst + col) = __floats2half2_rn(v0, v1);
        }
    }
}

template <int HD>
void launch(const uint16_t* q, const SeqKvHalf* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, const uint8_t* mask,
            int64_t mask_stride, uint16_t* out, cudaStream_t s) {
    constexpr size_t bytes = Smem<HD>::kBytes;
    static const bool attributes_set = [] {  // once per instantiation: above 48 KiB a kernel must ask
        FLEXRT_CUDA_CHECK(
            cudaFuncSetAttribute(flash_prefill_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
        return true;
    }();
    (void)attributes_set;
    const int64_t tiles_q = (seq + kRows - 1) / kRows;
    flash_prefill_kernel<HD><<<static_cast<unsigned>(batch * heads * tiles_q), kThreads, bytes, s>>>(
        reinterpret_cast<const __half*>(q), kv, seq, past, heads, mask, mask_stride, reinterpret_cast<__half*>(out));
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace

bool attention_prefill_mma(const uint16_t* q, const SeqKvHalf* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads,
                           int64_t head_dim, const uint8_t* mask, int64_t mask_stride, uint16_t* out, void* stream) {
    auto s = static_cast<cudaStream_t>(stream);
    switch (head_dim) {
    case 64: launch<64>(q, kv, batch, seq, past, heads, mask, mask_stride, out, s); return true;
    case 80: launch<80>(q, kv, batch, seq, past, heads, mask, mask_stride, out, s); return true;
    case 96: launch<96>(q, kv, batch, seq, past, heads, mask, mask_stride, out, s); return true;
    case 128: launch<128>(q, kv, batch, seq, past, heads, mask, mask_stride, out, s); return true;
    default: return false;
    }
}

}  // namespace flexrt::ops::cuda
