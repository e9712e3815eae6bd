// For the tests of attention over a compressed KV cache: rows compressed and what they widen back to.
#pragma once

#include "ops/group4.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace flexrt::ops {

// `x` (the layout's values, fp16) quantized into `packed`, and the fp16 values dequantize_group4 gives back
// into `widened`. Call it under ASSERT_NO_FATAL_FAILURE: it asserts that every value is finite.
inline void compress_rows(const std::vector<uint16_t>& x, const Group4Layout& layout, std::vector<uint8_t>& packed,
                          std::vector<uint16_t>& widened) {
    packed.assign(layout.bytes(), 0);
    ASSERT_EQ(quantize_group4(x.data(), layout, packed.data()), -1);
    widened.resize(x.size());
    dequantize_group4(packed.data(), layout, widened.data());
}

}  // namespace flexrt::ops
