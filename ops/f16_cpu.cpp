#include "f16.hpp"

#include <immintrin.h>

namespace flexrt::ops {

namespace {
__attribute__((target("avx,f16c"))) void half_to_float_f16c(const uint16_t* src, float* dst, int64_t n) noexcept {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}
// Round to nearest even, as float_to_half(float) does (_MM_FROUND_TO_NEAREST_INT; NaN stays NaN, overflow is inf).
__attribute__((target("avx,f16c"))) void float_to_half_f16c(const float* src, uint16_t* dst, int64_t n) noexcept {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; ++i) dst[i] = float_to_half(src[i]);
}
const bool kHasF16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
}  // namespace

void half_to_float(const uint16_t* src, float* dst, int64_t n) noexcept {
    if (kHasF16c) return half_to_float_f16c(src, dst, n);
    for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

void float_to_half(const float* src, uint16_t* dst, int64_t n) noexcept {
    if (kHasF16c) return float_to_half_f16c(src, dst, n);
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_half(src[i]);
}

}  // namespace flexrt::ops
