// Element types and shapes shared by the core, the ops and the models.
#pragma once

#include <flexrt/abi.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace flexrt {

enum class DType : uint32_t {
    f16 = FLEXRT_DTYPE_F16,
    f32 = FLEXRT_DTYPE_F32,
    f64 = FLEXRT_DTYPE_F64,
    i32 = FLEXRT_DTYPE_I32,
    i64 = FLEXRT_DTYPE_I64,
    u8 = FLEXRT_DTYPE_U8,
};

inline size_t dtype_size(DType t) noexcept {
    switch (t) {
    case DType::f16: return 2;
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
    }
    return 0;
}

inline const char* dtype_name(DType t) noexcept {
    switch (t) {
    case DType::f16: return "float16";
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::u8: return "uint8";
    }
    return "?";
}

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) noexcept {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

inline std::string shape_str(const Shape& s) {
    std::string out = "(";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + (s.size() == 1 ? ",)" : ")");
}

}  // namespace flexrt
