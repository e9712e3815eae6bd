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

// --- sampling: one block of kSampleThreads per row -------------------------------------------------

constexpr int kSampleThreads = 1024;
constexpr int kCand = static_cast<int>(kSampleCandidates);
static_assert(kCand == kSampleThreads, "one candidate slot per thread");

// A float's bits mapped to an unsigned key with the same order (larger value, larger key).
__device__ uint32_t order_key(float v) {
    const uint32_t b = __float_as_uint(v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

template <typename T>
__device__ T block_sum(T v, T* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    T total = 0;
    for (int w = 0; w < kSampleThreads / 32; ++w) total += scratch[w];
    return total;
}

__device__ float block_max(float v, float* scratch) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    float m = scratch[0];
    for (int w = 1; w < kSampleThreads / 32; ++w) m = fmaxf(m, scratch[w]);
    return m;
}

// Exclusive prefix sum over the block, in thread order (Hillis-Steele in shared memory).
template <typename T>
__device__ T block_exclusive_scan(T v, T* buf) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int o = 1; o < kSampleThreads; o <<= 1) {
        const T add = threadIdx.x >= o ? buf[threadIdx.x - o] : T(0);
        __syncthreads();
        buf[threadIdx.x] += add;
        __syncthreads();
    }
    const T incl = buf[threadIdx.x];
    __syncthreads();
    return incl - v;
}

// Each thread owns the contiguous ids [lo, hi): prefix sums in thread order are then sums in id order.
__global__ void __launch_bounds__(kSampleThreads) sample_kernel(const __half* logits, int64_t vocab, double temperature,
                                                                const double* uniforms, int64_t top_k, double top_p, int32_t* ids) {
    __shared__ float fscratch[32];
    __shared__ double dscratch[32];
    __shared__ int iscratch[32];
    __shared__ double dscan[kSampleThreads];
    __shared__ uint32_t cand_key[kCand];
    __shared__ int32_t cand_id[kCand];
    __shared__ int32_t result;
    __shared__ int n_greater;

    const __half* row = logits + blockIdx.x * vocab;
    const int64_t chunk = (vocab + kSampleThreads - 1) / kSampleThreads;
    const int64_t lo = min(vocab, threadIdx.x * chunk), hi = min(vocab, lo + chunk);
    const double u = uniforms[blockIdx.x];

    float local_max = -FLT_MAX;
    for (int64_t v = lo; v < hi; ++v) local_max = fmaxf(local_max, __half2float(row[v]));
    const double mx = block_max(local_max, fscratch);
    if (threadIdx.x == 0) result = -1;

    const bool cut = (top_k > 0 && top_k < vocab) || top_p < 1.0;
    if (!cut) {  // the whole vocabulary in id order: find the id where the running sum passes u * sum
        double mine = 0;
        for (int64_t v = lo; v < hi; ++v) mine += exp((__half2float(row[v]) - mx) / temperature);
        const double before = block_exclusive_scan(mine, dscan);
        const double total = block_sum(mine, dscratch);
        const double target = u * total;
        if (before <= target && target < before + mine) {
            double acc = before;
            int32_t pick = static_cast<int32_t>(hi - 1);
            for (int64_t v = lo; v < hi; ++v) {
                acc += exp((__half2float(row[v]) - mx) / temperature);
                if (acc > target) {
                    pick = static_cast<int32_t>(v);
                    break;
                }
            }
            result = pick;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            if (result < 0) {  // u * sum rounded up to the total: the CPU's fallback, the first maximum
                for (int64_t v = 0; v < vocab; ++v)
                    if (__half2float(row[v]) == static_cast<float>(mx)) {
                        result = static_cast<int32_t>(v);
                        break;
                    }
            }
            ids[blockIdx.x] = result;
        }
        return;
    }

    // The m most likely tokens: the m-th largest key by bisection on its bits, then the ties at it by id.
    const int64_t want = top_k > 0 ? min(top_k, vocab) : vocab;
    if (want > kCand && top_k > 0) {  // a top-k set beyond what we sort: the host decides
        if (threadIdx.x == 0) ids[blockIdx.x] = -1;
        return;
    }
    const int m = static_cast<int>(want < kCand ? want : kCand);
    uint32_t threshold = 0;
    for (int bit = 31; bit >= 0; --bit) {
        const uint32_t probe = threshold | (1u << bit);
        int count = 0;
        for (int64_t v = lo; v < hi; ++v) count += order_key(__half2float(row[v])) >= probe;
        if (block_sum(count, iscratch) >= m) threshold = probe;
    }
    int greater = 0, ties = 0;
    for (int64_t v = lo; v < hi; ++v) {
        const uint32_t k = order_key(__half2float(row[v]));
        greater += k > threshold;
        ties += k == threshold;
    }
    if (threadIdx.x == 0) n_greater = 0;
    cand_key[threadIdx.x] = 0;
    cand_id[threadIdx.x] = INT32_MAX;
    const int ties_before = block_exclusive_scan(ties, reinterpret_cast<int*>(dscan));
    const int total_greater = block_sum(greater, iscratch);
    const int tie_slots = m - total_greater;
    int tie_rank = ties_before;
    for (int64_t v = lo; v < hi; ++v) {
        const uint32_t k = order_key(__half2float(row[v]));
        int slot = -1;
        if (k > threshold)
            slot = atomicAdd(&n_greater, 1);
        else if (k == threshold && tie_rank < tie_slots)
            slot = total_greater + tie_rank++;
        if (slot >= 0) cand_key[slot] = k, cand_id[slot] = static_cast<int32_t>(v);
    }
    __syncthreads();
    // Bitonic sort: most likely first, ties by the smaller id (the CPU's order).
    for (int size = 2; size <= kCand; size <<= 1)
        for (int stride = size / 2; stride > 0; stride >>= 1) {
            const int i = threadIdx.x, j = i ^ stride;
            if (j > i) {
                const bool first_before = cand_key[i] > cand_key[j] || (cand_key[i] == cand_key[j] && cand_id[i] < cand_id[j]);
                const bool ascending = (i & size) == 0;  // this half wants "before" order
                if (first_before != ascending) {
                    const uint32_t tk = cand_key[i];
                    cand_key[i] = cand_key[j], cand_key[j] = tk;
                    const int32_t ti = cand_id[i];
                    cand_id[i] = cand_id[j], cand_id[j] = ti;
                }
            }
            __syncthreads();
        }
    // The CPU's sum is over its whole candidate list: the top-k, or the vocabulary when only top-p cuts.
    double full = 0;
    if (top_k <= 0) {
        double mine = 0;
        for (int64_t v = lo; v < hi; ++v) mine += exp((__half2float(row[v]) - mx) / temperature);
        full = block_sum(mine, dscratch);
    }
    if (threadIdx.x != 0) return;
    auto p = [&](int i) { return exp((static_cast<double>(__half2float(row[cand_id[i]])) - mx) / temperature); };
    double sum = full;
    if (top_k > 0)
        for (int i = 0; i < m; ++i) sum += p(i);
    int keep = m;
    if (top_p < 1.0) {
        double acc = 0;
        for (keep = 0; keep < m;) {
            acc += p(keep++) / sum;
            if (acc >= top_p) break;
        }
        if (acc < top_p && m < want) {  // the top-p set reaches past what we sorted: the host decides
            ids[blockIdx.x] = -1;
            return;
        }
    }
    double kept = 0;
    for (int i = 0; i < keep; ++i) kept += p(i);
    const double target = u * kept;
    double acc = 0;
    for (int i = 0; i < keep; ++i) {
        acc += p(i);
        if (acc > target) {
            ids[blockIdx.x] = cand_id[i];
            return;
        }
    }
    ids[blockIdx.x] = cand_id[keep - 1];
}

}  // namespace

void argmax(const uint16_t* logits, int64_t rows, int64_t vocab, int32_t* ids, void* stream) {
    if (rows == 0) return;
    argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(reinterpret_cast<const __half*>(logits),
                                                                                                   vocab, ids);
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda

namespace flexrt::ops::cuda {

void sample(const uint16_t* logits, int64_t rows, int64_t vocab, double temperature, const double* u, int64_t top_k, double top_p,
            int32_t* ids, void* stream) {
    if (rows == 0) return;
    if (top_k >= vocab) top_k = 0;  // the whole vocabulary, as the CPU reads it
    sample_kernel<<<static_cast<unsigned>(rows), kSampleThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        reinterpret_cast<const __half*>(logits), vocab, temperature, u, top_k, top_p, ids);
    FLEXRT_CUDA_LAUNCH_CHECK();
}

}  // namespace flexrt::ops::cuda
