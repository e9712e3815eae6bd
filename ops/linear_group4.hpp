// y = x W^T + b with W (out, in) held group4-compressed (ops/group4.hpp): the weights are read as 4-bit
// codes and widened next to the multiply, never written out whole in fp16. For decode, where a GEMM of a
// few rows is bound by the bytes of W, that reads ~3.5x fewer bytes than an fp16 GEMM.
//
// Fusable layouts: FlexLLMGen's weight grouping (group_dim 0: groups of 64 consecutive output rows per input
// column), i.e. outer == 1, dim == out, inner == in, group_size == 64; `in` a multiple of 64.
#pragma once

#include "group4.hpp"

#include <cstdint>

namespace flexrt::ops {

inline bool fusable_group4(const Group4Layout& L) {
    return L.outer == 1 && L.slab_bytes == 0 && L.group_size == 64 && L.inner % 64 == 0 && L.dim % 2 == 0;
}

// Up to this many rows (decode steps) a compute device multiplies compressed weights directly; above it
// (prefill) the GEMM is compute-bound and the weights are dequantized once into fp16 for the fp16 GEMM.
// One rule for every device and tier mix, so a policy's tokens do not depend on where weights live.
constexpr int64_t kFusedGroup4MaxRows = 128;
inline bool fuses_group4(int64_t rows, const Group4Layout& L) { return rows <= kFusedGroup4MaxRows && fusable_group4(L); }

// CPU: x (rows, in) fp32, y (rows, out) fp32. W is widened 64 output rows at a time (the same table values
// as dequantize_group4) into a small buffer, so the result equals dequantize_group4 + linear.
void linear_group4(const float* x, int64_t rows, const uint8_t* packed, const Group4Layout& L, const uint16_t* b, float* y, bool relu);

namespace cuda {
// x (rows, in) fp16, y (rows, out) fp16, device memory; `stream` a cudaStream_t. The 4-bit codes become
// fp16 with one fp16 FMA (code * fp16(1 / scale) + min), within 2 fp16 ulps of dequantize_group4's values;
// products accumulate in fp32 on tensor cores. Deterministic: a split of `in` over blocks is summed in a
// fixed order, not by atomics.
void linear_group4(const uint16_t* x, int64_t rows, const uint8_t* packed, const Group4Layout& L, const uint16_t* b, uint16_t* y, bool relu,
                   void* stream);
}  // namespace cuda

}  // namespace flexrt::ops
