// Prefill attention without a cache as GEMMs (see ops_cuda.hpp): for each sequence, a few heads at a time,
// S = Q K^T on the tensor cores (fp32 out), a causal, masked softmax to fp16 P, then O = P V.
#include "ops_cuda.hpp"

#include "cuda_check.cuh"

#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <mutex>

namespace flexrt::ops::cuda {
namespace {

constexpr size_t kScratch = 64u << 20;  // fp32 scores + fp16 probabilities of the heads in flight

// One cuBLAS handle and scratch per process, like linear()'s cuBLASLt state; calls are serialised (the
// handle's stream is set per call).
struct Blas {
    cublasHandle_t handle{};
    void* scratch = nullptr;
    std::mutex m;
    Blas() {
        FLEXRT_CUBLAS_CHECK(cublasCreate(&handle));
        FLEXRT_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
        FLEXRT_CUDA_CHECK(cudaMalloc(&scratch, kScratch));
    }
};

Blas& blas() {
    static Blas* instance = new Blas();  // lives for the process: it must outlive every stream that used it
    return *instance;
}

// One warp per score row (head, query): keys t <= query with mask[t] set are visible; a row with none (a pad
// query) gets the uniform average over every key, as the CPU variant does.
__global__ void causal_softmax_kernel(const float* scores, __half* probs, int64_t rows, int64_t seq, const uint8_t* mask) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    const int64_t qi = r % seq;
    const float* s = scores + r * seq;
    __half* p = probs + r * seq;
    float mx = -FLT_MAX;
    bool any = false;
    for (int64_t t = lane; t <= qi; t += 32)
        if (mask[t]) mx = fmaxf(mx, s[t]), any = true;
    for (int o = 16; o > 0; o >>= 1) {
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        any = __shfl_xor_sync(0xffffffffu, static_cast<int>(any), o) || any;
    }
    if (!any) {
        for (int64_t t = lane; t < seq; t += 32) p[t] = __float2half(1.0f / static_cast<float>(seq));
        return;
    }
    float sum = 0.0f;
    for (int64_t t = lane; t <= qi; t += 32)
        if (mask[t]) sum += __expf(s[t] - mx);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float inv = 1.0f / sum;
    for (int64_t t = lane; t < seq; t += 32) p[t] = __float2half(t <= qi && mask[t] ? __expf(s[t] - mx) * inv : 0.0f);
}

}  // namespace

bool attention_prefill_gemm(const uint16_t* q, const SeqKvHalf* kv_host, int64_t batch, int64_t seq, int64_t heads,
                            int64_t hd, const uint8_t* mask, int64_t mask_stride, uint16_t* out, void* stream) {
    const size_t per_head = static_cast<size_t>(seq) * static_cast<size_t>(seq) * (sizeof(float) + sizeof(__half));
    if (seq < 64 || per_head > kScratch) return false;
    Blas& B = blas();
    std::lock_guard lock(B.m);
    auto s = static_cast<cudaStream_t>(stream);
    FLEXRT_CUBLAS_CHECK(cublasSetStream(B.handle, s));
    const int64_t chunk = std::min<int64_t>(heads, static_cast<int64_t>(kScratch / per_head));
    auto* scores = static_cast<float*>(B.scratch);
    auto* probs = reinterpret_cast<__half*>(scores + chunk * seq * seq);
    const int64_t h = heads * hd;
    const float one = 1.0f, zero = 0.0f;
    const auto n = static_cast<int>(seq), d = static_cast<int>(hd);
    for (int64_t b = 0; b < batch; ++b) {
        const SeqKvHalf& kv = kv_host[b];
        const __half* qb = reinterpret_cast<const __half*>(q) + b * seq * h;
        __half* ob = reinterpret_cast<__half*>(out) + b * seq * h;
        for (int64_t n0 = 0; n0 < heads; n0 += chunk) {
            const auto hc = static_cast<int>(std::min(chunk, heads - n0));
            // Row-major S (q, k) is column-major S^T = K Q^T: A = K (stored row-major, read transposed), B = Q.
            FLEXRT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
                B.handle, CUBLAS_OP_T, CUBLAS_OP_N, n, n, d, &one, kv.new_k + n0 * hd, CUDA_R_16F,
                static_cast<int>(kv.new_stride), hd, qb + n0 * hd, CUDA_R_16F, static_cast<int>(h), hd, &zero, scores, CUDA_R_32F, n,
                seq * seq, hc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            const int64_t rows = hc * seq;
            causal_softmax_kernel<<<static_cast<unsigned>((rows + 7) / 8), 256, 0, s>>>(scores, probs, rows, seq,
                                                                                      mask + b * mask_stride);
            FLEXRT_CUDA_LAUNCH_CHECK();
            // Row-major O (q, d) is column-major O^T = V^T P^T: A = V as stored, B = P as stored.
            FLEXRT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
                B.handle, CUBLAS_OP_N, CUBLAS_OP_N, d, n, n, &one, kv.new_v + n0 * hd, CUDA_R_16F,
                static_cast<int>(kv.new_stride), hd, probs, CUDA_R_16F, n, seq * seq, &zero, ob + n0 * hd, CUDA_R_16F,
                static_cast<int>(h), hd, hc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
    }
    return true;
}

}  // namespace flexrt::ops::cuda
