#pragma once

#include <cstdint>

namespace flexrt::ops {

// y = (x - mean) / sqrt(var + eps) * w + b over the last dimension.
// x, y: (rows, h) fp32 (may alias); w, b: (h,) fp16.
void layer_norm(const float* x, int64_t rows, int64_t h, const uint16_t* w, const uint16_t* b, double eps, float* y);

}  // namespace flexrt::ops
