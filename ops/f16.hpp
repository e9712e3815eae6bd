// IEEE fp16 <-> fp32 conversion on the CPU. Weights are stored in fp16 on every tier (FlexLLMGen's files);
// the CPU compute path widens them to fp32 just before use.
#pragma once

#include <cstdint>
#include <cstring>

namespace flexrt::ops {

inline float half_to_float(uint16_t h) noexcept {
    const uint32_t sign = (h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                --exp;
            }
            bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// Round to nearest even, with overflow to inf and gradual underflow.
inline uint16_t float_to_half(float f) noexcept {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (absx < 0x38800000u) {                                               // subnormal or zero in fp16
        if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
        const uint32_t e = absx >> 23, m = (absx & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e;  // value = m * 2^(e-150) = r * 2^-24, so r = m >> (126 - e); 14..24
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) ++r;
        return static_cast<uint16_t>(sign | r);
    }
    uint32_t h = ((absx - 0x38000000u) >> 13);
    const uint32_t rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
}

// Widens n values; vectorised with F16C where the CPU has it.
void half_to_float(const uint16_t* src, float* dst, int64_t n) noexcept;
// Narrows n values, bit for bit float_to_half(float); vectorised with F16C where the CPU has it.
void float_to_half(const float* src, uint16_t* dst, int64_t n) noexcept;

}  // namespace flexrt::ops
