// The .npy header (format versions 1.0-3.0): what FlexLLMGen's weight files and our fixtures are.
#pragma once

#include <flexrt/tensor.hpp>

#include <cstdint>
#include <string>

namespace flexrt {

struct NpyHeader {
    DType dtype = DType::f32;
    Shape shape;
    uint64_t data_offset = 0;  // bytes from the start of the file to the first element
    uint64_t data_bytes() const { return static_cast<uint64_t>(numel(shape)) * dtype_size(dtype); }
};

// Parses the header at the start of `bytes` (`n` bytes: at least the whole header). `name` is used in
// errors. Throws flexrt::Error(BAD_DATA) for anything that is not a little-endian, C-order array of a
// supported dtype (f2, f4, f8, i4, i8, u1).
NpyHeader parse_npy_header(const void* bytes, uint64_t n, const std::string& name);

// Bytes to read so the whole header is surely included (the header is padded to 64 bytes, rarely > 4 KiB;
// parse_npy_header says when more is needed).
constexpr uint64_t kNpyProbeBytes = 4096;

// Writes a .npy file (tests and tools): header + data.
void write_npy(const std::string& path, DType dtype, const Shape& shape, const void* data);

// Reads a whole .npy file into memory (tests and tools); checks dtype.
std::string read_npy(const std::string& path, DType expect, Shape* shape);

}  // namespace flexrt
