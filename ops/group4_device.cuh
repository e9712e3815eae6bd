// Device helpers for group4 values (ops/group4.hpp), shared by the dequantize kernels and the attention
// that reads a compressed KV cache, so that both produce the same fp16 values.
#pragma once

#include "group4.hpp"

#include <cuda_fp16.h>

namespace flexrt::ops::cuda {

// group4_value without a division per element: with y = RN(1 / scale) (one correctly rounded reciprocal per
// group and column) and q = RN(a y), the remainder a - q scale is exact in an FMA and q + remainder y, rounded
// once, is RN(a / scale) - Markstein's theorem; no overflow or underflow here (|a| <= 15, scale in fp16's
// positive range). So the result is bit for bit the IEEE division's, which Group4Cuda.ExactForEveryScale checks
// for every positive fp16 scale and code.
struct Group4Divisor {
    float scale, y, mn;
};
__device__ __forceinline__ Group4Divisor group4_divisor(float scale, float mn) { return {scale, __frcp_rn(scale), mn}; }
__device__ __forceinline__ __half group4_decode(unsigned code, const Group4Divisor& d, bool symmetric) {
    const float a = symmetric ? static_cast<float>(static_cast<int>(code) - 8) : static_cast<float>(code);
    const float q = __fmul_rn(a, d.y);
    const float r = __fmaf_rn(-q, d.scale, a);
    const float v = __fmaf_rn(r, d.y, q);
    return __float2half_rn(symmetric ? v : __fadd_rn(v, d.mn));
}

}  // namespace flexrt::ops::cuda
