#include "f16.hpp"

#include <immintrin.h>

namespace flexrt::ops {

namespace {
__attribute__((target("avx,f16c"))) void half_to_float_f16c(const uint16_t* src, float* dst, int64_t n) noexcept {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}
const bool kHasF16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
}  // namespace

void half_to_float(const uint16_t* src, float* dst, int64_t n) noexcept {
    if (kHasF16c) return half_to_float_f16c(src, dst, n);
    for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

}  // namespace flexrt::ops
