// compress.group4_mse: writes flexrt's group4 format (so flexrt's GPU and CPU kernels multiply by it directly,
// fused into the GEMMs), but chooses each group's range by least squares instead of min/max: it tries
// `search_steps` ranges shrunk towards the group's mid-point, down to 75%, and keeps the one with the least
// squared error. A few clipped outliers then buy a finer step for the other values. search_steps = 0 is
// plain min/max, flexrt's own group4 byte for byte. An example of a third party's compressor, built against
// the installed SDK only; the format is docs/plugins.md's "The flexrt.group4 format".
//
// A tensor is viewed as (outer, D, inner) around its group dimension (D = shape[group_dim], the last when the
// tensor has fewer); groups of G = 64 along D, zero-padded. Codes: (outer, ng * G / 2, inner) bytes, the even
// element of a pair in the high nibble, padded to 16 bytes; then (outer, ng, 2, inner) fp16 [scale, min];
// x' = code / scale + min. Arithmetic in fp32, IEEE division, round half to even, as flexrt's kernels.
#include <flexrt/compressor.hpp>
#include <flexrt/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int64_t kGroup = 64;
constexpr float kMaxScale = 65504.0f;  // the largest finite fp16

uint16_t to_half(float f) {
    const _Float16 h = static_cast<_Float16>(f);  // round to nearest even
    uint16_t u;
    std::memcpy(&u, &h, 2);
    return u;
}
float from_half(uint16_t u) {
    _Float16 h;
    std::memcpy(&h, &u, 2);
    return static_cast<float>(h);
}

struct View {
    int64_t outer = 1, dim = 1, inner = 1, groups = 0;
    uint64_t code_bytes = 0, bytes = 0;
};

View view_of(const flexrt_tensor_desc* d, int64_t group_dim) {
    if (d->dtype != FLEXRT_DTYPE_F16 || d->ndim == 0 || d->ndim > FLEXRT_MAX_DIMS)
        FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED, "compress.group4_mse takes fp16 tensors of 1 to 8 dimensions");
    const int64_t gd = std::min<int64_t>(group_dim, d->ndim - 1);
    View v;
    for (int64_t i = 0; i < gd; ++i) v.outer *= d->shape[i];
    v.dim = d->shape[gd];
    for (int64_t i = gd + 1; i < d->ndim; ++i) v.inner *= d->shape[i];
    v.groups = (v.dim + kGroup - 1) / kGroup;
    v.code_bytes = (static_cast<uint64_t>(v.outer * v.groups * kGroup / 2 * v.inner) + 15) / 16 * 16;
    v.bytes = v.code_bytes + static_cast<uint64_t>(v.outer * v.groups * 2 * v.inner) * 2;
    return v;
}

unsigned code_of(float x, float scale, float mn) { return static_cast<unsigned>(std::clamp(std::rint((x - mn) * scale), 0.0f, 15.0f)); }
float value_of(unsigned code, float scale, float mn) { return static_cast<float>(code) / scale + mn; }

class Group4Mse final : public flexrt::ICompressor {
public:
    Group4Mse(const flexrt_host* host, int64_t search_steps, int64_t group_dim)
        : host_(host), steps_(search_steps), format_{sizeof(flexrt::Group4Format), 4, kGroup, static_cast<int32_t>(group_dim), 0} {}

    flexrt_status compressed_bytes(const flexrt_tensor_desc* d, uint64_t* bytes) const noexcept override {
        return flexrt::sdk::guard(host_, [&] {
            *bytes = view_of(d, format_.group_dim).bytes;
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status compress(const flexrt_tensor_desc* d, const void* src, void* dst) noexcept override {
        return flexrt::sdk::guard(host_, [&] {
            const View v = view_of(d, format_.group_dim);
            const auto* x = static_cast<const uint16_t*>(src);
            auto* out = static_cast<uint8_t*>(dst);
            const uint64_t codes = static_cast<uint64_t>(v.outer * v.groups * kGroup / 2 * v.inner);
            std::fill(out + codes, out + v.code_bytes, uint8_t{0});
            auto* pairs = reinterpret_cast<uint16_t*>(out + v.code_bytes);
            float g[kGroup];
            for (int64_t o = 0; o < v.outer; ++o)
                for (int64_t k = 0; k < v.groups; ++k)
                    for (int64_t c = 0; c < v.inner; ++c) {
                        float lo = INFINITY, hi = -INFINITY;
                        for (int64_t e = 0; e < kGroup; ++e) {
                            const int64_t r = k * kGroup + e;
                            g[e] = r < v.dim ? from_half(x[(o * v.dim + r) * v.inner + c]) : 0.0f;
                            if (!std::isfinite(g[e]))
                                FLEXRT_THROW(
                                    FLEXRT_STATUS_INVALID_ARGUMENT,
                                    "compress.group4_mse: element " + std::to_string((o * v.dim + r) * v.inner + c) + " is not finite");
                            lo = std::min(lo, g[e]), hi = std::max(hi, g[e]);
                        }
                        // The candidate ranges, the full one first; the least squared error wins (ties: the earlier).
                        float best_scale = 0, best_min = 0, best_err = INFINITY;
                        for (int64_t t = 0; t <= steps_; ++t) {
                            const float shrink = steps_ ? 1.0f - 0.25f * static_cast<float>(t) / static_cast<float>(steps_) : 1.0f;
                            const float mid = lo + (hi - lo) * 0.5f, l = t ? mid - (mid - lo) * shrink : lo,
                                        h = t ? mid + (hi - mid) * shrink : hi;
                            const float mn = from_half(to_half(l));
                            const float scale = from_half(to_half(h > mn ? std::min(15.0f / (h - mn), kMaxScale) : kMaxScale));
                            float err = 0;
                            for (int64_t e = 0; e < kGroup; ++e) {
                                const float d = from_half(to_half(value_of(code_of(g[e], scale, mn), scale, mn))) - g[e];
                                err += d * d;
                            }
                            if (err < best_err) best_err = err, best_scale = scale, best_min = mn;
                        }
                        pairs[(o * v.groups + k) * 2 * v.inner + c] = to_half(best_scale);
                        pairs[((o * v.groups + k) * 2 + 1) * v.inner + c] = to_half(best_min);
                        for (int64_t e = 0; e < kGroup; e += 2)
                            out[((o * v.groups * kGroup + k * kGroup + e) / 2) * v.inner + c] =
                                static_cast<uint8_t>(code_of(g[e], best_scale, best_min) << 4 | code_of(g[e + 1], best_scale, best_min));
                    }
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status decompress(const flexrt_tensor_desc* d, const void* src, void* dst) noexcept override {
        return flexrt::sdk::guard(host_, [&] {
            const View v = view_of(d, format_.group_dim);
            const auto* in = static_cast<const uint8_t*>(src);
            const auto* pairs = reinterpret_cast<const uint16_t*>(in + v.code_bytes);
            auto* y = static_cast<uint16_t*>(dst);
            for (int64_t o = 0; o < v.outer; ++o)
                for (int64_t r = 0; r < v.dim; ++r)
                    for (int64_t c = 0; c < v.inner; ++c) {
                        const int64_t k = r / kGroup;
                        const float scale = from_half(pairs[(o * v.groups + k) * 2 * v.inner + c]);
                        const float mn = from_half(pairs[((o * v.groups + k) * 2 + 1) * v.inner + c]);
                        const uint8_t byte = in[((o * v.groups * kGroup + r) / 2) * v.inner + c];
                        y[(o * v.dim + r) * v.inner + c] = to_half(value_of(r % 2 ? byte & 0xF : byte >> 4, scale, mn));
                    }
            return FLEXRT_STATUS_OK;
        });
    }

    // The format flexrt's compute devices read: that is what lets the engine use this compressor at all.
    void* get_extension(const char* name, uint32_t version) noexcept override {
        return std::strcmp(name, flexrt::kGroup4Extension) == 0 && version == 1 ? &format_ : nullptr;
    }

    void release() noexcept override { delete this; }

private:
    const flexrt_host* host_;
    int64_t steps_;
    flexrt::Group4Format format_;
};

const flexrt_option_desc kOptions[] = {
    {"search_steps", FLEXRT_FIELD_TYPE_INT, "8", "ranges tried per group, from min/max down to 75% (0: plain min/max)", 0, 64},
    {"group_dim", FLEXRT_FIELD_TYPE_INT, "0", "the dimension grouped (0: a weight's output rows, as FlexLLMGen)", 0, 7},
};

flexrt_status create(const flexrt_host* host, const flexrt_field* fields, uint32_t n, void** out) {
    return flexrt::sdk::guard(host, [&] {
        *out = static_cast<flexrt::ICompressor*>(
            new Group4Mse(host, flexrt::sdk::get<int64_t>(fields, n, "search_steps"), flexrt::sdk::get<int64_t>(fields, n, "group_dim")));
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_COMPRESS, "group4_mse", "0.1.0",
                                     "flexrt's group4 format, each group's range chosen by least squares (an example plugin)", kOptions, 2,
                                     &create))
