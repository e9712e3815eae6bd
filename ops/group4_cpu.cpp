#include "group4.hpp"

#include "f16.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>

namespace flexrt::ops {

Group4Layout Group4Layout::of(const std::vector<int64_t>& shape, int64_t group_dim, int64_t group_size, bool symmetric) {
    if (shape.empty() || group_dim < 0 || group_dim >= static_cast<int64_t>(shape.size()))
        throw std::invalid_argument("group4: group_dim " + std::to_string(group_dim) + " is not a dimension of a " +
                                    std::to_string(shape.size()) + "-d tensor");
    if (group_size < 2 || group_size % 2)
        throw std::invalid_argument("group4: group_size must be even and at least 2, got " + std::to_string(group_size));
    Group4Layout l;
    for (int64_t d = 0; d < group_dim; ++d) l.outer *= shape[d];
    l.dim = shape[group_dim];
    for (size_t d = group_dim + 1; d < shape.size(); ++d) l.inner *= shape[d];
    l.group_size = group_size;
    l.symmetric = symmetric;
    return l;
}

namespace {

constexpr int64_t kColumns = 64;  // columns (of `inner`) quantized side by side

// Bytes of two codes, even << 4 | odd, for C columns: a loop for each value of `symmetric`, a constant in each, so
// that GCC makes vector code of the asymmetric one (the default; it leaves the symmetric one scalar).
[[gnu::always_inline]] inline void code_pairs(const float* __restrict even, const float* __restrict odd, const float* __restrict scale,
                                              const float* __restrict mn, int64_t C, bool symmetric, uint8_t* __restrict dst) {
    if (symmetric)
        for (int64_t c = 0; c < C; ++c)
            dst[c] = static_cast<uint8_t>(group4_code(even[c], scale[c], mn[c], true) << 4 | group4_code(odd[c], scale[c], mn[c], true));
    else
        for (int64_t c = 0; c < C; ++c)
            dst[c] = static_cast<uint8_t>(group4_code(even[c], scale[c], mn[c], false) << 4 | group4_code(odd[c], scale[c], mn[c], false));
}

// Groups [first, last) of the (outer * ng) rows of groups; returns the lowest index of a non-finite element in the
// first block of columns that has one, or -1. A group runs along `dim`, its values `inner` apart: kColumns
// neighbouring columns' groups are taken at once, each value row a contiguous run that widens in one call and
// whose ranges and codes are vector lanes. Each column's arithmetic, in its order, is the one-group-at-a-time
// loop's, so the bytes do not depend on it (nor on the instruction set: an AVX2 copy is used where the CPU has
// it, with no contraction into FMA).
[[gnu::always_inline]] inline int64_t quantize_rows_body(const uint16_t* x, const Group4Layout& L, uint8_t* out, int64_t first,
                                                         int64_t last) {
    const int64_t G = L.group_size, ng = L.groups(), in = L.inner;
    std::vector<float> v(static_cast<size_t>(G * kColumns));  // [e][column]
    float lo[kColumns], hi[kColumns], amax[kColumns], scale[kColumns], mn[kColumns];
    for (int64_t og = first; og < last; ++og) {
        const int64_t o = og / ng, g = og % ng;
        for (int64_t c0 = 0; c0 < in; c0 += kColumns) {
            const int64_t C = std::min(kColumns, in - c0);
            for (int64_t c = 0; c < C; ++c) lo[c] = INFINITY, hi[c] = -INFINITY, amax[c] = 0;
            bool finite = true;
            for (int64_t e = 0; e < G; ++e) {
                const int64_t r = g * G + e;
                float* row = v.data() + e * kColumns;
                if (r < L.dim) {  // zero padding past dim
                    const uint16_t* src = x + (o * L.dim + r) * in + c0;
                    unsigned special = 0;  // an all-ones exponent: inf or NaN
                    for (int64_t c = 0; c < C; ++c) special |= (src[c] & 0x7c00u) == 0x7c00u;
                    finite &= !special;
                    half_to_float(src, row, C);
                } else {
                    std::fill(row, row + C, 0.0f);
                }
                for (int64_t c = 0; c < C; ++c) {
                    const float f = row[c];
                    lo[c] = std::min(lo[c], f), hi[c] = std::max(hi[c], f), amax[c] = std::max(amax[c], std::fabs(f));
                }
            }
            if (!finite)
                for (int64_t e = 0; e < G && g * G + e < L.dim; ++e)
                    for (int64_t c = 0; c < C; ++c) {
                        const int64_t at = (o * L.dim + g * G + e) * in + c0 + c;
                        if ((x[at] & 0x7c00u) == 0x7c00u) return at;
                    }
            uint16_t* pair = reinterpret_cast<uint16_t*>(out + L.pairs_at(o)) + (g * 2) * in + c0;
            for (int64_t c = 0; c < C; ++c) {
                mn[c] = L.symmetric ? 0.0f : lo[c];
                scale[c] = half_to_float(float_to_half(group4_scale(lo[c], hi[c], amax[c], L.symmetric)));  // the scale that is stored
                pair[c] = float_to_half(scale[c]);
                pair[in + c] = float_to_half(mn[c]);
            }
            for (int64_t e = 0; e < G; e += 2) {
                const float* even = v.data() + e * kColumns;
                uint8_t* dst = out + L.codes_at(o) + ((g * G + e) / 2) * in + c0;
                code_pairs(even, even + kColumns, scale, mn, C, L.symmetric, dst);
            }
        }
    }
    return -1;
}

// The same body compiled twice, chosen at run time (an ifunc from target_clones would run before ThreadSanitizer's
// runtime starts, and crash the TSan build).
__attribute__((target("avx2"))) int64_t quantize_rows_avx2(const uint16_t* x, const Group4Layout& L, uint8_t* out, int64_t first,
                                                           int64_t last) {
    return quantize_rows_body(x, L, out, first, last);
}
int64_t quantize_rows_baseline(const uint16_t* x, const Group4Layout& L, uint8_t* out, int64_t first, int64_t last) {
    return quantize_rows_body(x, L, out, first, last);
}
const bool kHasAvx2 = __builtin_cpu_supports("avx2");
int64_t quantize_rows(const uint16_t* x, const Group4Layout& L, uint8_t* out, int64_t first, int64_t last) {
    return kHasAvx2 ? quantize_rows_avx2(x, L, out, first, last) : quantize_rows_baseline(x, L, out, first, last);
}

}  // namespace

// Rows of groups in parallel: a model's weights are compressed once at start, and that should take seconds.
int64_t quantize_group4(const uint16_t* x, const Group4Layout& L, uint8_t* out) {
    const int64_t rows = L.outer * L.groups();
    if (L.slab_bytes) {  // the padding of each slab: deterministic bytes
        std::fill(out, out + L.bytes(), uint8_t{0});
    } else {
        const uint64_t codes = static_cast<uint64_t>(rows * L.group_size / 2 * L.inner);
        std::fill(out + codes, out + L.code_bytes(), uint8_t{0});
    }
    const int64_t threads = std::clamp<int64_t>(L.elements() >> 20, 1, std::max(1u, std::thread::hardware_concurrency()));
    std::vector<int64_t> bad(static_cast<size_t>(threads), -1);
    {
        std::vector<std::jthread> pool;
        for (int64_t t = 0; t < threads; ++t)
            pool.emplace_back([&, t] { bad[t] = quantize_rows(x, L, out, rows * t / threads, rows * (t + 1) / threads); });
    }
    int64_t first = -1;
    for (int64_t b : bad)
        if (b >= 0 && (first < 0 || b < first)) first = b;
    return first;
}

void dequantize_group4_groups(const uint8_t* in_bytes, const Group4Layout& L, int64_t o, int64_t g0, int64_t g1, uint16_t* out) {
    const int64_t G = L.group_size, in = L.inner;
    const auto* pairs = reinterpret_cast<const uint16_t*>(in_bytes + L.pairs_at(o));
    // Per group and column, the 16 values a code can take (the same fp32 operations as one at a time):
    // then each element is a table lookup.
    std::vector<uint16_t> table(static_cast<size_t>(in) * 16);
    for (int64_t g = g0; g < g1; ++g) {
        const uint16_t* pair = pairs + (g * 2) * in;
        for (int64_t c = 0; c < in; ++c) {
            const float scale = half_to_float(pair[c]), mn = half_to_float(pair[in + c]);
            for (int code = 0; code < 16; ++code)
                table[c * 16 + code] = float_to_half(group4_value(static_cast<unsigned>(code), scale, mn, L.symmetric));
        }
        for (int64_t r = g * G; r < std::min(L.dim, (g + 1) * G); ++r) {
            const uint8_t* row = in_bytes + L.codes_at(o) + (r / 2) * in;
            uint16_t* dst = out + (r - g0 * G) * in;
            const int shift = r % 2 == 0 ? 4 : 0;
            for (int64_t c = 0; c < in; ++c) dst[c] = table[c * 16 + ((row[c] >> shift) & 0xf)];
        }
    }
}

void dequantize_group4(const uint8_t* in_bytes, const Group4Layout& L, uint16_t* out) {
    for (int64_t o = 0; o < L.outer; ++o) dequantize_group4_groups(in_bytes, L, o, 0, L.groups(), out + o * L.dim * L.inner);
}

}  // namespace flexrt::ops
