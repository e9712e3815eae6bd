#pragma once

#include <cstdint>

namespace flexrt::ops {

// Scratch a linear() call needs, in floats: one block of widened weight rows.
int64_t linear_scratch_floats(int64_t in_features);

// y = x W^T + b, optionally followed by ReLU.
// x: (rows, in) fp32; W: (out, in) fp16 (PyTorch's Linear layout); b: (out,) fp16 or nullptr;
// y: (rows, out) fp32, must not alias x; scratch: linear_scratch_floats(in) floats.
void linear(const float* x, int64_t rows, int64_t in, const uint16_t* w, const uint16_t* b, int64_t out, float* y, float* scratch,
            bool relu = false);

}  // namespace flexrt::ops
