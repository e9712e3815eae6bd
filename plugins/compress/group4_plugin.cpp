// compress.group4: group-wise 4-bit quantization in FlexLLMGen's layout (ops/group4.hpp has the format and
// the rules), on the host; it declares the format (extension "flexrt.group4") so the engine dequantizes on
// its compute device. Options: num_bits (4), group_size, group_dim (of weights), symmetric.
#include "ops/group4.hpp"

#include <flexrt/compressor.hpp>
#include <flexrt/sdk.hpp>

#include <string>
#include <vector>

namespace {

using flexrt::sdk::guard;

class Group4 final : public flexrt::ICompressor {
public:
    Group4(const flexrt_host* host, int64_t group_size, int64_t group_dim, bool symmetric)
        : host_(host),
          format_{sizeof(flexrt::Group4Format), 4, static_cast<int32_t>(group_size), static_cast<int32_t>(group_dim), symmetric ? 1 : 0} {}

    flexrt_status compressed_bytes(const flexrt_tensor_desc* src, uint64_t* bytes) const noexcept override {
        return guard(host_, [&] {
            *bytes = layout(*src).bytes();
            return FLEXRT_STATUS_OK;
        });
    }
    flexrt_status compress(const flexrt_tensor_desc* desc, const void* src, void* dst) noexcept override {
        return guard(host_, [&] {
            const auto at = flexrt::ops::quantize_group4(static_cast<const uint16_t*>(src), layout(*desc), static_cast<uint8_t*>(dst));
            if (at >= 0) {
                flexrt::sdk::log(host_, FLEXRT_LOG_LEVEL_ERROR, "group4: element " + std::to_string(at) + " is not finite");
                return FLEXRT_STATUS_BAD_DATA;
            }
            return FLEXRT_STATUS_OK;
        });
    }
    flexrt_status decompress(const flexrt_tensor_desc* desc, const void* src, void* dst) noexcept override {
        return guard(host_, [&] {
            flexrt::ops::dequantize_group4(static_cast<const uint8_t*>(src), layout(*desc), static_cast<uint16_t*>(dst));
            return FLEXRT_STATUS_OK;
        });
    }
    void* get_extension(const char* name, uint32_t version) noexcept override {
        return std::string(name) == flexrt::kGroup4Extension && version == 1 ? &format_ : nullptr;
    }
    void release() noexcept override { delete this; }

private:
    flexrt::ops::Group4Layout layout(const flexrt_tensor_desc& d) const {
        if (d.dtype != FLEXRT_DTYPE_F16) throw std::invalid_argument("group4 compresses fp16 tensors");
        return flexrt::ops::Group4Layout::of_tensor({d.shape, d.shape + d.ndim}, format_.group_dim, format_.group_size,
                                                    format_.symmetric != 0);
    }

    const flexrt_host* host_;
    flexrt::Group4Format format_;
};

const flexrt_option_desc kOptions[] = {
    {"num_bits", FLEXRT_FIELD_TYPE_INT, "4", "bits per value (4: two codes per byte)", 4, 4},
    {"group_size", FLEXRT_FIELD_TYPE_INT, "64", "values per group (even)", 2, 4096},
    {"group_dim", FLEXRT_FIELD_TYPE_INT, "0", "the dimension grouped (0: a weight's output rows, as FlexLLMGen)", 0, 7},
    {"symmetric", FLEXRT_FIELD_TYPE_BOOL, "false", "codes around zero with one scale (else min/max per group)", 1, 0},
};

flexrt_status create(const flexrt_host* host, const flexrt_field* fields, uint32_t n, void** out) {
    return guard(host, [&] {
        const auto group_size = flexrt::sdk::get<int64_t>(fields, n, "group_size");
        if (group_size % 2) {
            flexrt::sdk::log(host, FLEXRT_LOG_LEVEL_ERROR, "group4: group_size must be even, got " + std::to_string(group_size));
            return FLEXRT_STATUS_INVALID_ARGUMENT;
        }
        *out = static_cast<flexrt::ICompressor*>(new Group4(host, group_size, flexrt::sdk::get<int64_t>(fields, n, "group_dim"),
                                                            flexrt::sdk::get<bool>(fields, n, "symmetric")));
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_COMPRESS, "group4", "0.1.0",
                                     "group-wise 4-bit, FlexLLMGen's format; dequantized on the compute device", kOptions, 4, &create))
