// compress.broken: breaks the rules the compressor conformance suite checks, so the suite can be seen to fail
// it: it keeps nothing (decompresses to zeros), takes NaN, and with `overrun` writes one byte past its output.
#include <flexrt/compressor.hpp>
#include <flexrt/sdk.hpp>

#include <cstring>

namespace {

uint64_t elements(const flexrt_tensor_desc* d) {
    uint64_t n = 1;
    for (uint32_t i = 0; i < d->ndim; ++i) n *= static_cast<uint64_t>(d->shape[i]);
    return n;
}

class BrokenCompressor final : public flexrt::ICompressor {
public:
    explicit BrokenCompressor(bool overrun) : overrun_(overrun) {}
    flexrt_status compressed_bytes(const flexrt_tensor_desc* d, uint64_t* bytes) const noexcept override {
        *bytes = elements(d);
        return FLEXRT_STATUS_OK;
    }
    flexrt_status compress(const flexrt_tensor_desc* d, const void*, void* dst) noexcept override {
        std::memset(dst, 0, elements(d) + (overrun_ ? 1 : 0));
        return FLEXRT_STATUS_OK;
    }
    flexrt_status decompress(const flexrt_tensor_desc* d, const void*, void* dst) noexcept override {
        std::memset(dst, 0, elements(d) * 2);
        return FLEXRT_STATUS_OK;
    }
    void release() noexcept override { delete this; }

private:
    bool overrun_;
};

const flexrt_option_desc kOptions[] = {{"overrun", FLEXRT_FIELD_TYPE_BOOL, "false", "write one byte past the output", 1, 0}};

flexrt_status create(const flexrt_host* host, const flexrt_field* fields, uint32_t n, void** out) {
    return flexrt::sdk::guard(host, [&] {
        *out = static_cast<flexrt::ICompressor*>(new BrokenCompressor(flexrt::sdk::get<bool>(fields, n, "overrun")));
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_COMPRESS, "broken", "0.0.1", "keeps nothing, takes NaN (a test plugin)", kOptions,
                                     1, &create))
