#include "ops_cuda.hpp"

#include "cuda_check.cuh"
#include "group4_device.cuh"

#include <cuda_fp16.h>

#include <mma.h>

#include <cfloat>

namespace flexrt::ops::cuda {
namespace {

constexpr int kMaxPerLane = 8;  // head_dim <= 256

// Row t of one sequence's keys (or values), at head n: cached rows first, then this step's.
__device__ inline const __half* kv_row(const SeqKvHalf& sk, int64_t past, int64_t t, bool value, int64_t n, int64_t hd) {
    const uint16_t* base =
        t < past ? (value ? sk.past_v : sk.past_k) + t * sk.past_stride : (value ? sk.new_v : sk.new_k) + (t - past) * sk.new_stride;
    return reinterpret_cast<const __half*>(base) + n * hd;
}

// 16 consecutive fp16 values (32-byte aligned) to fp32, with two 16-byte loads.
__device__ __forceinline__ void widen16(const __half* p, float* dst) {
    const uint4* r = reinterpret_cast<const uint4*>(p);
    const uint4 a = r[0], c = r[1];
    const __half2* ha = reinterpret_cast<const __half2*>(&a);
    const __half2* hc = reinterpret_cast<const __half2*>(&c);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        dst[2 * i] = __low2float(ha[i]), dst[2 * i + 1] = __high2float(ha[i]);
        dst[8 + 2 * i] = __low2float(hc[i]), dst[8 + 2 * i + 1] = __high2float(hc[i]);
    }
}

__device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Decode (seq == 1): a block of kDecodeWarps warps per (sequence, head) splits the keys between its warps
// (each runs the online softmax over its share), then warp 0 merges the partial maxima, sums and
// weighted values. Four times the parallelism of a warp per query: decode is bound by how many K/V rows
// are in flight, not by arithmetic.
constexpr int kDecodeWarps = 4;

// VEC: contiguous elements per lane (head_dim = 32 * VEC, loaded VEC halves at a time: 8-byte loads for
// head_dim 128), or 0 for any head_dim (lane l takes l, l + 32, ...; 2-byte loads).
// PACKED: the past rows are group4 blocks (PackedRows): lane values are widened from their codes in registers.
template <int VEC, bool PACKED>
__global__ void attention_decode_kernel(const __half* q, const SeqKvHalf* kv, PackedRows pr, int64_t past, int64_t heads, int64_t hd,
                                        const uint8_t* mask, int64_t mask_stride, __half* out) {
    constexpr int kPer = VEC ? VEC : kMaxPerLane;
    __shared__ float part_max[kDecodeWarps], part_sum[kDecodeWarps];
    __shared__ float part_acc[kDecodeWarps][32 * kMaxPerLane];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t n = blockIdx.x % heads, b = blockIdx.x / heads, h = heads * hd, keys = past + 1;
    const SeqKvHalf sk = kv[b];
    const uint8_t* m = mask + b * mask_stride;
    auto elem = [&](int e) -> int64_t { return VEC ? lane * VEC + e : lane + 32 * e; };
    auto load = [&](const __half* row, float* dst) {
        if constexpr (VEC == 4) {
            const uint2 raw = *reinterpret_cast<const uint2*>(row + lane * 4);
            const __half2 a = *reinterpret_cast<const __half2*>(&raw.x), c = *reinterpret_cast<const __half2*>(&raw.y);
            dst[0] = __low2float(a), dst[1] = __high2float(a), dst[2] = __low2float(c), dst[3] = __high2float(c);
        } else if constexpr (VEC == 2) {
            const __half2 a = *reinterpret_cast<const __half2*>(row + lane * 2);
            dst[0] = __low2float(a), dst[1] = __high2float(a);
        } else {
#pragma unroll
            for (int e = 0; e < kPer; ++e) dst[e] = elem(e) < hd ? __half2float(row[elem(e)]) : 0.0f;
        }
    };
    // Row t of the keys or values: a packed past row is widened here, to dequantize_group4's fp16 values.
    auto load_row = [&](int64_t t, bool value, float* dst) {
        if (!PACKED || t >= past) return load(kv_row(sk, past, t, value, n, hd), dst);
        const auto* row = reinterpret_cast<const uint8_t*>(value ? sk.past_v : sk.past_k) + t * sk.past_stride;
        const auto* pairs = reinterpret_cast<const __half*>(row + pr.pairs_at);
        if constexpr (VEC == 2 || VEC == 4) {  // the lane's VEC values: VEC / 2 code bytes, one group
            const int64_t e0 = n * hd + lane * VEC, g = e0 / pr.group_size;
            const Group4Divisor d = group4_divisor(__half2float(pairs[2 * g]), __half2float(pairs[2 * g + 1]));
            const uint32_t bytes = VEC == 4 ? *reinterpret_cast<const uint16_t*>(row + e0 / 2) : row[e0 / 2];
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                const unsigned byte = (bytes >> (8 * (e / 2))) & 0xff;
                dst[e] = __half2float(group4_decode(e % 2 ? byte & 0xf : byte >> 4, d, pr.symmetric));
            }
        } else {
#pragma unroll
            for (int e = 0; e < kPer; ++e) {
                if (elem(e) >= hd) {
                    dst[e] = 0.0f;
                    continue;
                }
                const int64_t i = n * hd + elem(e), g = i / pr.group_size;
                const Group4Divisor d = group4_divisor(__half2float(pairs[2 * g]), __half2float(pairs[2 * g + 1]));
                dst[e] = __half2float(group4_decode(i % 2 ? row[i / 2] & 0xf : row[i / 2] >> 4, d, pr.symmetric));
            }
        }
    };
    float qv[kPer], acc[kPer];
    load(q + b * h + n * hd, qv);
#pragma unroll
    for (int e = 0; e < kPer; ++e) acc[e] = 0.0f;
    float mx = -FLT_MAX, sum = 0.0f;
    for (int64_t t = warp; t < keys; t += kDecodeWarps) {
        if (!m[t]) continue;
        float kk[kPer], vv[kPer];
        load_row(t, false, kk);  // both rows' loads issued before the reduction
        load_row(t, true, vv);
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < kPer; ++e) d += qv[e] * kk[e];
        d = warp_sum(d);
        const float nm = fmaxf(mx, d), scale = __expf(mx - nm), p = __expf(d - nm);
        sum = sum * scale + p;
#pragma unroll
        for (int e = 0; e < kPer; ++e) acc[e] = acc[e] * scale + p * vv[e];
        mx = nm;
    }
    if (lane == 0) part_max[warp] = mx, part_sum[warp] = sum;
#pragma unroll
    for (int e = 0; e < kPer; ++e) part_acc[warp][elem(e) < 32 * kMaxPerLane ? elem(e) : 0] = acc[e];
    __syncthreads();
    if (warp != 0) return;
    float gm = -FLT_MAX;
    for (int w = 0; w < kDecodeWarps; ++w)
        if (part_sum[w] > 0.0f) gm = fmaxf(gm, part_max[w]);
    float total = 0.0f, f[kDecodeWarps];
    for (int w = 0; w < kDecodeWarps; ++w) total += part_sum[w] * (f[w] = part_sum[w] > 0.0f ? __expf(part_max[w] - gm) : 0.0f);
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
        const int64_t i = elem(e);
        if (i >= hd) continue;
        float o = 0.0f;
        if (total > 0.0f) {
            for (int w = 0; w < kDecodeWarps; ++w) o += part_acc[w][i] * f[w];
            o /= total;
        } else {  // nothing visible (a pad query): the uniform average over every key, as the CPU does
            for (int64_t t = 0; t < keys; ++t) {
                float row[kPer];
                load_row(t, true, row);
                o += row[e];
            }
            o /= static_cast<float>(keys);
        }
        out[b * h + n * hd + i] = __float2half(o);
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
    const int64_t kpad = hd + 1;     // floats per K row in shared memory
    float* ks = smem;                // (kTileK, kpad)
    float* vs = ks + kTileK * kpad;  // (kTileK, hd)
    float* qs = vs + kTileK * hd;    // (kTileQ, hd)
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
    for (int64_t t0 = 0; t0 < keys_needed; t0 += kTileK) {
        __syncthreads();  // the previous tile is no longer read
        for (int64_t i = threadIdx.x; i < kTileK * hd; i += blockDim.x) {
            const int64_t r = i / hd, c = i % hd, t = t0 + r;
            const bool in = t < keys_needed;
            ks[r * kpad + c] = in ? __half2float(kv_row(sk, past, t, false, n, hd)[c]) : 0.0f;
            vs[r * hd + c] = in ? __half2float(kv_row(sk, past, t, true, n, hd)[c]) : 0.0f;
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
            const __half* vr = kv_row(sk, past, t, true, n, hd);
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

// Prefill on the tensor cores (flash-style): a block of 4 warps takes 64 queries of one (sequence, head);
// for each tile of 64 keys, S = Q K^T and O += P V are 16x16x16 fp16 WMMA products with fp32 accumulation,
// and the online softmax (running max and sum per row) runs on S in shared memory between them. P is rounded
// to fp16 for the second product, as flash attention does. head_dim: a multiple of 16, at most 128.
namespace wm = nvcuda::wmma;
constexpr int kFlashQ = 64, kFlashK = 64;

struct FlashLayout {
    int64_t ldh, lds, ldp, ldo;            // leading dimensions (elements)
    size_t q, k, v, s, p, o, m, l, scale;  // byte offsets in dynamic shared memory
    size_t bytes;
};

__host__ __device__ inline FlashLayout flash_layout(int64_t hd) {
    FlashLayout f{};
    f.ldh = hd + 8;
    f.lds = kFlashK + 4;
    f.ldp = kFlashK + 8;
    f.ldo = hd + 4;
    size_t at = 0;
    auto take = [&](size_t bytes) {
        const size_t here = at;
        at += (bytes + 127) / 128 * 128;  // every array starts 128-byte aligned (WMMA wants 32)
        return here;
    };
    f.q = take(kFlashQ * f.ldh * 2);
    f.k = take(kFlashK * f.ldh * 2);
    f.v = take(kFlashK * f.ldh * 2);
    f.s = take(kFlashQ * f.lds * 4);
    f.p = take(kFlashQ * f.ldp * 2);
    f.o = take(kFlashQ * f.ldo * 4);
    f.m = take(kFlashQ * 4);
    f.l = take(kFlashQ * 4);
    f.scale = take(kFlashQ * 4);
    f.bytes = at;
    return f;
}

__global__ void attention_flash_kernel(const __half* q, const SeqKvHalf* kv, int64_t seq, int64_t past, int64_t heads, int64_t hd,
                                       const uint8_t* mask, int64_t mask_stride, __half* out) {
    extern __shared__ __align__(128) unsigned char sm[];
    const FlashLayout L = flash_layout(hd);
    __half* Qs = reinterpret_cast<__half*>(sm + L.q);
    __half* Ks = reinterpret_cast<__half*>(sm + L.k);
    __half* Vs = reinterpret_cast<__half*>(sm + L.v);
    float* S = reinterpret_cast<float*>(sm + L.s);
    __half* P = reinterpret_cast<__half*>(sm + L.p);
    float* O = reinterpret_cast<float*>(sm + L.o);
    float* M = reinterpret_cast<float*>(sm + L.m);
    float* Lsum = reinterpret_cast<float*>(sm + L.l);
    float* Sc = reinterpret_cast<float*>(sm + L.scale);
    const int warp = threadIdx.x / 32, tid = threadIdx.x, nthreads = blockDim.x;
    const int64_t tiles_q = (seq + kFlashQ - 1) / kFlashQ;
    const int64_t qt = blockIdx.x % tiles_q, n = (blockIdx.x / tiles_q) % heads, b = blockIdx.x / (tiles_q * heads);
    const int64_t q0 = qt * kFlashQ, h = heads * hd, vec = hd / 8;  // 8 halves = 16 bytes per load
    const SeqKvHalf sk = kv[b];
    const uint8_t* m = mask + b * mask_stride;
    for (int64_t i = tid; i < kFlashQ * vec; i += nthreads) {
        const int64_t r = i / vec, c = (i % vec) * 8;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (q0 + r < seq) val = *reinterpret_cast<const uint4*>(q + (b * seq + q0 + r) * h + n * hd + c);
        *reinterpret_cast<uint4*>(Qs + r * L.ldh + c) = val;
    }
    for (int64_t i = tid; i < kFlashQ * hd; i += nthreads) O[(i / hd) * L.ldo + i % hd] = 0.0f;
    for (int64_t r = tid; r < kFlashQ; r += nthreads) M[r] = -FLT_MAX, Lsum[r] = 0.0f;
    const int64_t keys_needed = past + min(seq, q0 + kFlashQ);
    for (int64_t t0 = 0; t0 < keys_needed; t0 += kFlashK) {
        __syncthreads();  // the previous tile's K, V, P are no longer read
        for (int64_t i = tid; i < kFlashK * vec; i += nthreads) {
            const int64_t r = i / vec, c = (i % vec) * 8, t = t0 + r;
            uint4 kval = make_uint4(0, 0, 0, 0), vval = make_uint4(0, 0, 0, 0);
            if (t < keys_needed) {
                kval = *reinterpret_cast<const uint4*>(kv_row(sk, past, t, false, n, hd) + c);
                vval = *reinterpret_cast<const uint4*>(kv_row(sk, past, t, true, n, hd) + c);
            }
            *reinterpret_cast<uint4*>(Ks + r * L.ldh + c) = kval;
            *reinterpret_cast<uint4*>(Vs + r * L.ldh + c) = vval;
        }
        __syncthreads();
        // S = Q K^T: warp w computes rows [16w, 16w + 16) x all 64 keys.
        for (int j = 0; j < kFlashK / 16; ++j) {
            wm::fragment<wm::accumulator, 16, 16, 16, float> acc;
            wm::fill_fragment(acc, 0.0f);
            for (int64_t kk = 0; kk < hd / 16; ++kk) {
                wm::fragment<wm::matrix_a, 16, 16, 16, __half, wm::row_major> a;
                wm::fragment<wm::matrix_b, 16, 16, 16, __half, wm::col_major> bf;
                wm::load_matrix_sync(a, Qs + (warp * 16) * L.ldh + kk * 16, static_cast<unsigned>(L.ldh));
                wm::load_matrix_sync(bf, Ks + (j * 16) * L.ldh + kk * 16, static_cast<unsigned>(L.ldh));
                wm::mma_sync(acc, a, bf, acc);
            }
            wm::store_matrix_sync(S + (warp * 16) * L.lds + j * 16, acc, static_cast<unsigned>(L.lds), wm::mem_row_major);
        }
        __syncthreads();
        // The online softmax, one thread per query row.
        for (int64_t r = tid; r < kFlashQ; r += nthreads) {
            const int64_t qi = q0 + r;
            float tile_max = -INFINITY;
            for (int c = 0; c < kFlashK; ++c) {
                const int64_t t = t0 + c;
                const bool ok = qi < seq && t < keys_needed && t <= past + qi && m[t];
                if (ok) tile_max = fmaxf(tile_max, S[r * L.lds + c]);
            }
            const float nm = fmaxf(M[r], tile_max), scale = __expf(M[r] - nm);
            float sum = 0.0f;
            for (int c = 0; c < kFlashK; ++c) {
                const int64_t t = t0 + c;
                const bool ok = qi < seq && t < keys_needed && t <= past + qi && m[t];
                const float p = ok ? __expf(S[r * L.lds + c] - nm) : 0.0f;
                P[r * L.ldp + c] = __float2half(p);
                sum += p;
            }
            Lsum[r] = Lsum[r] * scale + sum;
            M[r] = nm;
            Sc[r] = scale;
        }
        __syncthreads();
        for (int64_t i = tid; i < kFlashQ * hd; i += nthreads) O[(i / hd) * L.ldo + i % hd] *= Sc[i / hd];
        __syncthreads();
        // O += P V: warp w owns rows [16w, 16w + 16) of O.
        for (int64_t j = 0; j < hd / 16; ++j) {
            wm::fragment<wm::accumulator, 16, 16, 16, float> acc;
            float* o = O + (warp * 16) * L.ldo + j * 16;
            wm::load_matrix_sync(acc, o, static_cast<unsigned>(L.ldo), wm::mem_row_major);
            for (int kk = 0; kk < kFlashK / 16; ++kk) {
                wm::fragment<wm::matrix_a, 16, 16, 16, __half, wm::row_major> a;
                wm::fragment<wm::matrix_b, 16, 16, 16, __half, wm::row_major> bf;
                wm::load_matrix_sync(a, P + (warp * 16) * L.ldp + kk * 16, static_cast<unsigned>(L.ldp));
                wm::load_matrix_sync(bf, Vs + (kk * 16) * L.ldh + j * 16, static_cast<unsigned>(L.ldh));
                wm::mma_sync(acc, a, bf, acc);
            }
            wm::store_matrix_sync(o, acc, static_cast<unsigned>(L.ldo), wm::mem_row_major);
        }
    }
    __syncthreads();
    for (int64_t i = tid; i < kFlashQ * hd; i += nthreads) {
        const int64_t r = i / hd, e = i % hd, qi = q0 + r;
        if (qi >= seq) continue;
        float val;
        if (Lsum[r] > 0.0f) {
            val = O[r * L.ldo + e] / Lsum[r];
        } else {  // nothing visible (a pad query): the uniform average over every key, as the CPU does
            const int64_t keys = past + seq;
            float acc = 0.0f;
            for (int64_t t = 0; t < keys; ++t) acc += __half2float(kv_row(sk, past, t, true, n, hd)[e]);
            val = acc / static_cast<float>(keys);
        }
        out[(b * seq + qi) * h + n * hd + e] = __float2half(val);
    }
}

// Decode over compressed past rows, head_dim HD = 64 or 128 (a multiple of 16, group_size a multiple of 16):
// a lane takes 16 consecutive values of a row (8 code bytes, one group), so a warp scores 32 * 16 / HD keys at
// once - the row blocks are small, and this keeps as many in flight as the fp16 kernel does. Codes become
// fp32 values with one FMA each (code * RN(1 / scale) + min, within an fp32 rounding or two of the format's
// division, not rounded to fp16 in between); each group of lanes keeps its own online softmax, merged at the
// end in a fixed order. The block's 4 warps split the keys as in attention_decode_kernel.
template <int HD>
__global__ void attention_decode_packed_kernel(const __half* q, const SeqKvHalf* kv, PackedRows pr, int64_t past, int64_t heads,
                                               const uint8_t* mask, int64_t mask_stride, __half* out) {
    constexpr int kLanes = HD / 16, kKeys = 32 / kLanes;  // lanes per key, keys per warp at a time
    constexpr int kParts = kDecodeWarps * kKeys;          // independent softmax states in the block
    __shared__ float part_max[kParts], part_sum[kParts];
    __shared__ float part_acc[kParts][HD];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, sub = lane % kLanes, slot = lane / kLanes;
    const int part = warp * kKeys + slot;
    const int64_t n = blockIdx.x % heads, b = blockIdx.x / heads, h = heads * HD, keys = past + 1;
    const SeqKvHalf sk = kv[b];
    const uint8_t* m = mask + b * mask_stride;
    const int64_t e0 = n * HD + sub * 16;  // this lane's 16 values of a row
    const int64_t code_at = e0 / 2, pair_at = pr.pairs_at + 4 * (e0 / pr.group_size);
    float qv[16], acc[16];
    widen16(q + b * h + e0, qv);
#pragma unroll
    for (int i = 0; i < 16; ++i) acc[i] = 0.0f;
    // Row t's 16 values of this lane: widened from the codes (t < past) or this step's fp16 row.
    auto load = [&](int64_t t, bool value, float* dst) {
        if (t < past) {
            const auto* row = reinterpret_cast<const uint8_t*>(value ? sk.past_v : sk.past_k) + t * sk.past_stride;
            const uint2 codes = *reinterpret_cast<const uint2*>(row + code_at);
            const __half2 sm = *reinterpret_cast<const __half2*>(row + pair_at);
            const float inv = __frcp_rn(__low2float(sm)), mn = pr.symmetric ? -8.0f * inv : __high2float(sm);
            const uint32_t w[2] = {codes.x, codes.y};
#pragma unroll
            for (int i = 0; i < 8; ++i) {  // byte i: values 2i (high nibble) and 2i + 1
                const uint32_t byte = w[i / 4] >> (8 * (i % 4));
                const float hi = __uint_as_float(0x4B000000u | ((byte >> 4) & 0xf)) - 8388608.0f;
                const float lo = __uint_as_float(0x4B000000u | (byte & 0xf)) - 8388608.0f;
                dst[2 * i] = __fmaf_rn(hi, inv, mn), dst[2 * i + 1] = __fmaf_rn(lo, inv, mn);
            }
        } else {
            widen16(reinterpret_cast<const __half*>(value ? sk.new_v : sk.new_k) + (t - past) * sk.new_stride + e0, dst);
        }
    };
    float mx = -FLT_MAX, sum = 0.0f;
    for (int64_t t0 = static_cast<int64_t>(warp) * kKeys; t0 < keys; t0 += kDecodeWarps * kKeys) {
        const int64_t t = t0 + slot;
        const bool live = t < keys && m[t];
        float kk[16], vv[16];
        if (live) {
            load(t, false, kk);
            load(t, true, vv);
        }
        float d = 0.0f;
#pragma unroll
        for (int i = 0; i < 16; ++i) d += qv[i] * (live ? kk[i] : 0.0f);
#pragma unroll
        for (int o = kLanes / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);  // within the key's lanes
        if (!live) continue;
        const float nm = fmaxf(mx, d), scale = __expf(mx - nm), p = __expf(d - nm);
        sum = sum * scale + p;
#pragma unroll
        for (int i = 0; i < 16; ++i) acc[i] = acc[i] * scale + p * vv[i];
        mx = nm;
    }
    if (sub == 0) part_max[part] = mx, part_sum[part] = sum;
#pragma unroll
    for (int i = 0; i < 16; ++i) part_acc[part][sub * 16 + i] = acc[i];
    __syncthreads();
    float gm = -FLT_MAX, total = 0.0f;
    for (int p = 0; p < kParts; ++p)
        if (part_sum[p] > 0.0f) gm = fmaxf(gm, part_max[p]);
    for (int p = 0; p < kParts; ++p) total += part_sum[p] > 0.0f ? part_sum[p] * __expf(part_max[p] - gm) : 0.0f;
    if (total ==
        0.0f) {  // nothing visible (a pad query; the same for the whole block): the uniform average over every key, as the CPU does
#pragma unroll
        for (int i = 0; i < 16; ++i) acc[i] = 0.0f;
        for (int64_t t = part; t < keys; t += kParts) {
            float vv[16];
            load(t, true, vv);
#pragma unroll
            for (int i = 0; i < 16; ++i) acc[i] += vv[i];
        }
        __syncthreads();  // every thread has read the softmax parts
#pragma unroll
        for (int i = 0; i < 16; ++i) part_acc[part][sub * 16 + i] = acc[i];
        __syncthreads();
    }
    if (warp != 0) return;
    for (int i = lane; i < HD; i += 32) {
        float o = 0.0f;
        if (total > 0.0f) {
            for (int p = 0; p < kParts; ++p)
                if (part_sum[p] > 0.0f) o += part_acc[p][i] * __expf(part_max[p] - gm);
            o /= total;
        } else {
            for (int p = 0; p < kParts; ++p) o += part_acc[p][i];
            o /= static_cast<float>(keys);
        }
        out[b * h + n * HD + i] = __float2half(o);
    }
}

// The decode kernel for this head_dim: wide loads where head_dim allows (rows are 8-byte aligned when
// head_dim and the row strides are multiples of 4, as the engine's layouts are; a lane's values of a packed
// row are then within one group, group_size being a multiple of 8).
template <bool PACKED>
void decode(const __half* q, const SeqKvHalf* kv, const PackedRows& pr, int64_t batch, int64_t past, int64_t heads, int64_t head_dim,
            const uint8_t* mask, int64_t mask_stride, __half* out, cudaStream_t s) {
    const dim3 grid(static_cast<unsigned>(batch * heads)), block(32 * kDecodeWarps);
    if (head_dim == 128)
        attention_decode_kernel<4, PACKED><<<grid, block, 0, s>>>(q, kv, pr, past, heads, head_dim, mask, mask_stride, out);
    else if (head_dim == 64)
        attention_decode_kernel<2, PACKED><<<grid, block, 0, s>>>(q, kv, pr, past, heads, head_dim, mask, mask_stride, out);
    else
        attention_decode_kernel<0, PACKED><<<grid, block, 0, s>>>(q, kv, pr, past, heads, head_dim, mask, mask_stride, out);
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void attention(const uint16_t* q, const SeqKvHalf* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, int64_t head_dim,
               const uint8_t* mask, int64_t mask_stride, uint16_t* out, void* stream) {
    if (head_dim > 32 * kMaxPerLane)
        throw Error(FLEXRT_STATUS_UNSUPPORTED,
                    "attention: head_dim " + std::to_string(head_dim) + " > " + std::to_string(32 * kMaxPerLane));
    const int64_t rows = batch * heads * seq;
    if (rows == 0) return;
    if (seq > 1 && attention_prefill_mma(q, kv, batch, seq, past, heads, head_dim, mask, mask_stride, out, stream)) return;
    if (seq > 1 && head_dim % 16 == 0 && head_dim <= 128) {  // prefill on the tensor cores, other head sizes
        const FlashLayout L = flash_layout(head_dim);
        FLEXRT_CUDA_CHECK(
            cudaFuncSetAttribute(attention_flash_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(L.bytes)));
        const int64_t tiles_q = (seq + kFlashQ - 1) / kFlashQ;
        attention_flash_kernel<<<static_cast<unsigned>(batch * heads * tiles_q), 128, L.bytes, static_cast<cudaStream_t>(stream)>>>(
            reinterpret_cast<const __half*>(q), kv, seq, past, heads, head_dim, mask, mask_stride, reinterpret_cast<__half*>(out));
        FLEXRT_CUDA_LAUNCH_CHECK();
        return;
    }
    if (seq > 1) {  // prefill, other head sizes: the CUDA-core tiled kernel
        const int64_t tiles_q = (seq + kTileQ - 1) / kTileQ;
        const size_t shared = sizeof(float) * static_cast<size_t>(kTileK * (head_dim + 1) + kTileK * head_dim + kTileQ * head_dim);
        if (shared > 48 * 1024)  // above the default limit a kernel must ask (head_dim > 160)
            FLEXRT_CUDA_CHECK(
                cudaFuncSetAttribute(attention_tiled_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
        attention_tiled_kernel<<<static_cast<unsigned>(batch * heads * tiles_q), 32 * kTileQ, shared, static_cast<cudaStream_t>(stream)>>>(
            reinterpret_cast<const __half*>(q), kv, seq, past, heads, head_dim, mask, mask_stride, reinterpret_cast<__half*>(out));
        FLEXRT_CUDA_LAUNCH_CHECK();
        return;
    }
    // decode: keys split between the warps of a block
    auto s = static_cast<cudaStream_t>(stream);
    const auto* qh = reinterpret_cast<const __half*>(q);
    auto* oh = reinterpret_cast<__half*>(out);
    decode<false>(qh, kv, PackedRows{}, batch, past, heads, head_dim, mask, mask_stride, oh, s);
}

void attention_decode_packed(const uint16_t* q, const SeqKvHalf* kv, const PackedRows& rows, int64_t batch, int64_t past, int64_t heads,
                             int64_t head_dim, const uint8_t* mask, int64_t mask_stride, uint16_t* out, void* stream) {
    if (head_dim > 32 * kMaxPerLane)
        throw Error(FLEXRT_STATUS_UNSUPPORTED,
                    "attention: head_dim " + std::to_string(head_dim) + " > " + std::to_string(32 * kMaxPerLane));
    if (rows.group_size % 8 != 0)
        throw Error(FLEXRT_STATUS_UNSUPPORTED,
                    "attention over a compressed cache: group_size " + std::to_string(rows.group_size) + " is not a multiple of 8");
    if (batch * heads == 0) return;
    const auto* qh = reinterpret_cast<const __half*>(q);
    auto* oh = reinterpret_cast<__half*>(out);
    auto s = static_cast<cudaStream_t>(stream);
    const dim3 grid(static_cast<unsigned>(batch * heads)), block(32 * kDecodeWarps);
    if (rows.group_size % 16 == 0 && head_dim == 128)
        attention_decode_packed_kernel<128><<<grid, block, 0, s>>>(qh, kv, rows, past, heads, mask, mask_stride, oh);
    else if (rows.group_size % 16 == 0 && head_dim == 64)
        attention_decode_packed_kernel<64><<<grid, block, 0, s>>>(qh, kv, rows, past, heads, mask, mask_stride, oh);
    else
        return decode<true>(qh, kv, rows, batch, past, heads, head_dim, mask, mask_stride, oh, s);  // any head_dim: exact widening
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda
