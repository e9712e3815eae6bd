// ICompressor: turns a tensor into compressed bytes and back, implemented by compress plugins.
// C-mappable: noexcept virtuals, POD arguments, flexrt_status returns (see abi.h).
#pragma once

#include <flexrt/abi.h>

#include <cstdint>

namespace flexrt {

// Extension "flexrt.group4", version 1 (get_extension): the compressor writes flexrt's group4 format
// (group-wise 4-bit with fp16 [scale, min] pairs, FlexLLMGen's layout; see docs/plugins.md), so the
// engine's compute devices dequantize it with their own kernels, fused into the compute. A compressor
// without it is used on the host only. The struct lives as long as the compressor.
struct Group4Format {
    uint32_t struct_size;
    int32_t num_bits;    // 4
    int32_t group_size;  // even
    int32_t group_dim;   // the dimension grouped, of a weight tensor
    int32_t symmetric;   // 0 or 1
};
inline constexpr const char* kGroup4Extension = "flexrt.group4";

class ICompressor {
public:
    // Bytes of the compressed form of a tensor described by `src` (borrowed). Sync; may be called
    // concurrently. The compressed form is one contiguous block: the plugin chooses its inner layout.
    virtual flexrt_status compressed_bytes(const flexrt_tensor_desc* src, uint64_t* bytes) const noexcept = 0;

    // Compresses `src` (host memory, contiguous, described by `desc`) into `dst` (host memory,
    // compressed_bytes() long). Both borrowed for the call. Sync; may be called concurrently.
    virtual flexrt_status compress(const flexrt_tensor_desc* desc, const void* src, void* dst) noexcept = 0;

    // Inverse of compress(): `src` holds compressed_bytes(desc) bytes; `dst` receives the tensor.
    // Sync; may be called concurrently.
    virtual flexrt_status decompress(const flexrt_tensor_desc* desc, const void* src, void* dst) noexcept = 0;

    // Optional interfaces (device kernels, fused ops) added in later minor versions.
    virtual void* get_extension(const char* /*name*/, uint32_t /*version*/) noexcept { return nullptr; }

    // Destroys the object inside the plugin. Called once.
    virtual void release() noexcept = 0;

protected:
    ~ICompressor() = default;
};

}  // namespace flexrt
