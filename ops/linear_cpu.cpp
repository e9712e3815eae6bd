#include "linear.hpp"

#include "f16.hpp"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace flexrt::ops {

namespace {
// Weights are widened a block of rows at a time, so scratch stays small even for the (vocab, h) head.
constexpr int64_t kBlockFloats = 4ll << 20;

// Few rows (decode): GEMM would pack the whole weight matrix for a handful of dot products. Reading each
// fp16 weight row once and widening it in registers halves the bytes and skips the packing.
constexpr int64_t kMaxGemvRows = 8;

__attribute__((target("avx2,fma,f16c"))) void gemv_rows_f16(const float* x, int64_t rows, int64_t in, const uint16_t* w, int64_t out,
                                                            float* y) {
    for (int64_t o = 0; o < out; ++o) {
        const uint16_t* wr = w + o * in;
        __m256 acc[kMaxGemvRows];
        for (int64_t r = 0; r < rows; ++r) acc[r] = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= in; i += 8) {
            const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + i)));
            for (int64_t r = 0; r < rows; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * in + i), wv, acc[r]);
        }
        for (int64_t r = 0; r < rows; ++r) {
            __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
            lo = _mm_hadd_ps(lo, lo);
            lo = _mm_hadd_ps(lo, lo);
            float sum = _mm_cvtss_f32(lo);
            for (int64_t t = i; t < in; ++t) sum += x[r * in + t] * half_to_float(wr[t]);
            y[r * out + o] = sum;
        }
    }
}

const bool kHasAvx2Fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");

}  // namespace

int64_t linear_scratch_floats(int64_t in_features) { return std::max(kBlockFloats, in_features); }

void linear(const float* x, int64_t rows, int64_t in, const uint16_t* w, const uint16_t* b, int64_t out, float* y, float* scratch,
            bool relu) {
    const int64_t block = std::max<int64_t>(1, kBlockFloats / in);
    const bool gemv = rows <= kMaxGemvRows && kHasAvx2Fma;
    if (gemv) gemv_rows_f16(x, rows, in, w, out, y);
    for (int64_t o0 = 0; o0 < out && !gemv; o0 += block) {
        const int64_t n = std::min(block, out - o0);
        half_to_float(w + o0 * in, scratch, n * in);
        // y[:, o0:o0+n] = x (rows, in) * Wblock^T (in, n)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n), static_cast<int>(in), 1.0f, x,
                    static_cast<int>(in), scratch, static_cast<int>(in), 0.0f, y + o0, static_cast<int>(out));
    }
    if (b) {
        std::vector<float> bf(out);
        half_to_float(b, bf.data(), out);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t o = 0; o < out; ++o) y[r * out + o] += bf[o];
    }
    if (relu)
        for (int64_t i = 0; i < rows * out; ++i) y[i] = std::max(y[i], 0.0f);
}

}  // namespace flexrt::ops
