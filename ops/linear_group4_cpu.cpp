#include "linear_group4.hpp"

#include "linear.hpp"

#include <algorithm>
#include <vector>

namespace flexrt::ops {

// Blocks of groups (64 output rows each) small enough to stay in cache: widen a block, multiply it, place its
// columns of y. Each output is the same sum as linear() over the fully dequantized matrix.
void linear_group4(const float* x, int64_t rows, const uint8_t* packed, const Group4Layout& L, const uint16_t* b, float* y, bool relu) {
    const int64_t in = L.inner, out = L.dim, G = L.group_size, ng = L.groups();
    const int64_t groups_per_block = std::max<int64_t>(1, (1 << 20) / (G * in));
    std::vector<uint16_t> w(static_cast<size_t>(groups_per_block * G * in));
    std::vector<float> part(static_cast<size_t>(rows * groups_per_block * G));
    std::vector<float> scratch(static_cast<size_t>(linear_scratch_floats(in)));
    for (int64_t g0 = 0; g0 < ng; g0 += groups_per_block) {
        const int64_t g1 = std::min(ng, g0 + groups_per_block);
        const int64_t r0 = g0 * G, n = std::min(out, g1 * G) - r0;
        dequantize_group4_groups(packed, L, 0, g0, g1, w.data());
        linear(x, rows, in, w.data(), b ? b + r0 : nullptr, n, part.data(), scratch.data(), relu);
        for (int64_t r = 0; r < rows; ++r) std::copy_n(part.data() + r * n, n, y + r * out + r0);
    }
}

}  // namespace flexrt::ops
