// Group-wise 4-bit quantization, FlexLLMGen's format (../shared/reference/flexllmgen.md section 3), used
// for weights and the KV cache. A tensor is viewed as (outer, D, inner) around its group dimension (D =
// shape[group_dim]); D is padded with zeros to ng * G (G = group_size, ng = ceil(D / G)). Each group of G
// values along D at one (outer, inner) position gets 4-bit codes and an fp16 (scale, min) pair:
//   asymmetric: code = round((x - min) * scale), scale = 15 / (max - min);  x' = code / scale + min
//   symmetric:  code = round(x * scale) + 8,     scale = 7 / max|x|;        x' = (code - 8) / scale
// The compressed block is the packed codes, (outer, ng * G / 2, inner) bytes with the even element of a pair
// in the high nibble (padded to 16 bytes), then the pairs, (outer, ng, 2, inner) fp16 [scale, min] (min = 0
// when symmetric).
//
// Where FlexLLMGen returns garbage: a group whose range makes 15 / (max - min) overflow fp16 (constant or
// tiny-range groups) gets the largest finite scale, 65504, so its codes stay in range and it dequantizes to
// within 0.5 / 65504 of the input (a constant group exactly). Non-finite input is refused.
//
// Arithmetic is fp32 with IEEE division and round-half-to-even, so the CPU and CUDA variants agree bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define FLEXRT_HOST_DEVICE __host__ __device__
#else
#define FLEXRT_HOST_DEVICE
#endif

namespace flexrt::ops {

struct Group4Layout {
    int64_t outer = 1, dim = 1, inner = 1;  // the tensor as (outer, dim, inner)
    int64_t group_size = 64;                // even
    bool symmetric = false;
    // 0: one compressed block for the whole tensor (weights). Else each outer index o is a block of its own,
    // the (1, dim, inner) layout at byte o * slab_bytes: the KV cache, where a token's row is written once,
    // stored and moved alone, and any range of rows is one contiguous range of bytes.
    int64_t slab_bytes = 0;

    // The layout of a tensor of `shape` grouped along shape[group_dim].
    static Group4Layout of(const std::vector<int64_t>& shape, int64_t group_dim, int64_t group_size, bool symmetric);
    // The same, grouped along the last dimension when the tensor has no dimension `group_dim`: the rule the
    // group4 plugin compresses by and the engine dequantizes by.
    static Group4Layout of_tensor(const std::vector<int64_t>& shape, int64_t group_dim, int64_t group_size, bool symmetric) {
        return of(shape, std::min<int64_t>(group_dim, static_cast<int64_t>(shape.size()) - 1), group_size, symmetric);
    }
    // `n` rows of `h` values, each row its own block (slab_bytes: one row's bytes rounded up to 16).
    static Group4Layout rows(int64_t n, int64_t h, int64_t group_size, bool symmetric) {
        Group4Layout one{1, h, 1, group_size, symmetric, 0};
        return {n, h, 1, group_size, symmetric, static_cast<int64_t>((one.bytes() + 15) / 16 * 16)};
    }
    FLEXRT_HOST_DEVICE int64_t groups() const { return (dim + group_size - 1) / group_size; }
    FLEXRT_HOST_DEVICE int64_t elements() const { return outer * dim * inner; }
    // The codes, padded to 16 bytes so the pairs after them are aligned for wide loads.
    FLEXRT_HOST_DEVICE uint64_t code_bytes() const {
        const int64_t slabs = slab_bytes ? 1 : outer;
        return (static_cast<uint64_t>(slabs * groups() * group_size / 2 * inner) + 15) / 16 * 16;
    }
    FLEXRT_HOST_DEVICE uint64_t pair_bytes() const { return static_cast<uint64_t>((slab_bytes ? 1 : outer) * groups() * 2 * inner) * 2; }
    FLEXRT_HOST_DEVICE uint64_t bytes() const {
        return slab_bytes ? static_cast<uint64_t>(outer * slab_bytes) : code_bytes() + pair_bytes();
    }
    // Byte offsets of slab o's codes, (ng * G / 2, inner), and of its (scale, min) pairs, (ng, 2, inner) fp16.
    FLEXRT_HOST_DEVICE uint64_t codes_at(int64_t o) const {
        return static_cast<uint64_t>(slab_bytes ? o * slab_bytes : o * groups() * group_size / 2 * inner);
    }
    FLEXRT_HOST_DEVICE uint64_t pairs_at(int64_t o) const {
        return slab_bytes ? static_cast<uint64_t>(o * slab_bytes) + code_bytes()
                          : code_bytes() + static_cast<uint64_t>(o * groups() * 2 * inner) * 2;
    }
};

constexpr float kGroup4MaxScale = 65504.0f;  // the largest finite fp16

// The arithmetic of one group, one definition for the CPU and the CUDA variants so that they agree bit for
// bit: fp32, IEEE division (__fdiv_rn on the device, whatever the compiler's division flags), round half to
// even, no operation an FMA could fuse.
FLEXRT_HOST_DEVICE inline float group4_div(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
// The scale of a group of this range (before the rounding to the fp16 that is stored).
FLEXRT_HOST_DEVICE inline float group4_scale(float lo, float hi, float amax, bool symmetric) {
    if (symmetric) return amax > 0.0f ? fminf(group4_div(7.0f, amax), kGroup4MaxScale) : kGroup4MaxScale;
    return hi > lo ? fminf(group4_div(15.0f, hi - lo), kGroup4MaxScale) : kGroup4MaxScale;
}
// The code of value v in a group of (stored) scale and minimum.
FLEXRT_HOST_DEVICE inline unsigned group4_code(float v, float scale, float mn, bool symmetric) {
    const float r = rintf(symmetric ? v * scale : (v - mn) * scale);
    // Clamped by comparisons (r is finite: fminf's NaN rules would keep the CPU's loop scalar), then through int (a
    // float to unsigned conversion has no vector instruction before AVX-512); the code is the same either way.
    const float lo = symmetric ? -7.0f : 0.0f, hi = symmetric ? 7.0f : 15.0f;
    const float clamped = r < lo ? lo : (r > hi ? hi : r);
    return static_cast<unsigned>(static_cast<int>(symmetric ? clamped + 8.0f : clamped));
}
// The value a code stands for (before the rounding to fp16).
FLEXRT_HOST_DEVICE inline float group4_value(unsigned code, float scale, float mn, bool symmetric) {
    return symmetric ? group4_div(static_cast<float>(static_cast<int>(code) - 8), scale) : group4_div(static_cast<float>(code), scale) + mn;
}

// Quantizes x (fp16, the layout's elements) into out (layout.bytes()). Returns the index of the first
// non-finite element (and writes nothing meaningful), or -1.
int64_t quantize_group4(const uint16_t* x, const Group4Layout& layout, uint8_t* out);

// Dequantizes `in` (layout.bytes()) into out (fp16, the layout's elements).
void dequantize_group4(const uint8_t* in, const Group4Layout& layout, uint16_t* out);
// Part of it: groups [g0, g1) of slab `o`, i.e. rows [g0 * G, min(dim, g1 * G)) of that (dim, inner) slab,
// into out (those rows, inner).
void dequantize_group4_groups(const uint8_t* in, const Group4Layout& layout, int64_t o, int64_t g0, int64_t g1, uint16_t* out);

namespace cuda {
// The CUDA variants (CUDA builds only), bit for bit the CPU's; pointers in device memory, `stream` a
// cudaStream_t. quantize sets *bad_index (device int64, -1 before) to a non-finite element's index.
void quantize_group4(const uint16_t* x, const Group4Layout& layout, uint8_t* out, int64_t* bad_index, void* stream);
void dequantize_group4(const uint8_t* in, const Group4Layout& layout, uint16_t* out, void* stream);
}  // namespace cuda

}  // namespace flexrt::ops
