// The compressor conformance checks: sizes, error bounds on random, constant, tiny-range and large-magnitude
// groups and on dimensions that are not a multiple of the group, refusal of non-finite input, no write past
// the buffers, concurrent calls. A compressor with the flexrt.group4 extension is held to the format: its
// bytes are the layout flexrt's compute kernels dequantize (ops/group4.hpp), and its error to that of flexrt's
// min/max quantizer of the format.
#include "check.hpp"

#include "ops/f16.hpp"
#include "ops/group4.hpp"

#include <flexrt/compressor.hpp>

#include <cmath>
#include <optional>
#include <random>
#include <thread>

namespace flexrt::conformance {
namespace {

namespace fs = std::filesystem;

using Shape = std::vector<int64_t>;

flexrt_tensor_desc desc_of(const Shape& shape) {
    flexrt_tensor_desc d{sizeof(flexrt_tensor_desc), FLEXRT_DTYPE_F16, static_cast<uint32_t>(shape.size()), {}};
    std::copy(shape.begin(), shape.end(), d.shape);
    return d;
}
std::string text(const Shape& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}
size_t count(const Shape& shape) {
    size_t n = 1;
    for (int64_t e : shape) n *= static_cast<size_t>(e);
    return n;
}

struct Compressor {
    explicit Compressor(const Subject& s) : c(create<ICompressor>(s, "compress")) {
        const auto* f = static_cast<const Group4Format*>(c->get_extension(kGroup4Extension, 1));
        if (f) {
            expect(f->struct_size >= sizeof(Group4Format), "the flexrt.group4 extension's struct_size is too small");
            expect(f->num_bits == 4, "the flexrt.group4 extension declares num_bits " + std::to_string(f->num_bits));
            expect(f->group_size >= 2 && f->group_size % 2 == 0,
                   "the flexrt.group4 extension declares group_size " + std::to_string(f->group_size) + " (an even number >= 2)");
            format = *f;
        }
    }
    ops::Group4Layout layout(const Shape& shape) const {
        return ops::Group4Layout::of_tensor(shape, format->group_dim, format->group_size, format->symmetric != 0);
    }
    uint64_t bytes(const Shape& shape) const {
        const auto d = desc_of(shape);
        uint64_t b = 0;
        expect_ok(c->compressed_bytes(&d, &b), "compressed_bytes of " + text(shape));
        return b;
    }
    std::vector<uint8_t> compress(const Shape& shape, const std::vector<uint16_t>& x) {
        const auto d = desc_of(shape);
        std::vector<uint8_t> packed(bytes(shape));
        expect_ok(c->compress(&d, x.data(), packed.data()), "compress of " + text(shape));
        return packed;
    }
    std::vector<uint16_t> decompress(const Shape& shape, const std::vector<uint8_t>& packed) {
        const auto d = desc_of(shape);
        std::vector<uint16_t> y(count(shape));
        expect_ok(c->decompress(&d, packed.data(), y.data()), "decompress of " + text(shape));
        return y;
    }
    PluginPtr<ICompressor> c;
    std::optional<Group4Format> format;
};

std::vector<uint16_t> uniform(const Shape& shape, float lo, float hi, unsigned seed) {
    std::vector<uint16_t> x(count(shape));
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    for (auto& v : x) v = ops::float_to_half(u(rng));
    return x;
}

void sizes(const Subject& s, const fs::path&, std::string&) {
    Compressor c(s);
    for (const Shape& shape : {Shape{300, 96}, Shape{7, 7168}, Shape{1000}, Shape{64, 64, 3}, Shape{1}}) {
        const uint64_t b = c.bytes(shape);
        expect(b > 0, "compressed_bytes of " + text(shape) + " is 0");
        expect(c.bytes(shape) == b, "compressed_bytes of " + text(shape) + " changes between calls");
        if (c.format)
            expect(b == c.layout(shape).bytes(), "compressed_bytes of " + text(shape) + " is " + std::to_string(b) +
                                                     ", the flexrt.group4 layout has " + std::to_string(c.layout(shape).bytes()));
    }
}

// The largest error a min/max quantizer of the group4 format may make on a group of this range: half a step,
// the fp16 rounding of the stored scale (2^-11 relative) over 15 steps, and the fp16 rounding of the result.
// (ops/group4_test.cpp holds flexrt's own quantizer to it.)
double group4_bound(double lo, double hi, double amax, bool symmetric) {
    const double step = symmetric ? amax / 7 : (hi - lo) / 15;
    const double scale = std::min(1.0 / std::max(step, 1e-300), double{ops::kGroup4MaxScale});
    return 0.5 / scale + 16 * step * std::ldexp(1.0, -11) + amax * std::ldexp(1.0, -11) + std::ldexp(1.0, -24);
}

void error_bounds(const Subject& s, const fs::path&, std::string& note) {
    Compressor c(s);
    struct Case {
        const char* name;
        Shape shape;
        std::vector<uint16_t> x;
    };
    std::vector<Case> cases;
    cases.push_back({"random in [-1, 1]", {256, 192}, uniform({256, 192}, -1, 1, 1)});
    cases.push_back({"constant 0.3", {128, 128}, std::vector<uint16_t>(128 * 128, ops::float_to_half(0.3f))});
    {
        std::vector<uint16_t> x(128 * 128);
        // 0.01 and the next fp16: a range whose 15 / range overflows fp16, where FlexLLMGen's scale is garbage
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint16_t>(ops::float_to_half(0.01f) + i % 2);
        cases.push_back({"tiny range (0.01 and the next fp16)", {128, 128}, std::move(x)});
    }
    cases.push_back({"large magnitude (+-60000)", {128, 128}, uniform({128, 128}, -60000, 60000, 2)});
    cases.push_back({"130 x 70 (not a multiple of the group)", {130, 70}, uniform({130, 70}, -3, 5, 3)});
    cases.push_back({"one value", {1}, {ops::float_to_half(-2.5f)}});
    for (const Case& k : cases) {
        const auto y = c.decompress(k.shape, c.compress(k.shape, k.x));
        for (size_t i = 0; i < y.size(); ++i)
            expect(std::isfinite(ops::half_to_float(y[i])),
                   std::string(k.name) + ": element " + std::to_string(i) + " decompresses to " + std::to_string(ops::half_to_float(y[i])));
        if (c.format) {
            // Against flexrt's min/max quantizer of the same format on the same tensor: no more than 10% more
            // RMS error (a better quantizer, clipping by MSE say, has less), and no element off by more than
            // half its group's range plus the min/max bound (garbage, such as FlexLLMGen's overflowed scales).
            const auto L = c.layout(k.shape);
            std::vector<uint8_t> ref_packed(L.bytes());
            std::vector<uint16_t> ref(y.size());
            ops::quantize_group4(k.x.data(), L, ref_packed.data());
            ops::dequantize_group4(ref_packed.data(), L, ref.data());
            double e2 = 0, r2 = 0;
            for (size_t i = 0; i < y.size(); ++i) {
                const double x = ops::half_to_float(k.x[i]), d = ops::half_to_float(y[i]) - x, dr = ops::half_to_float(ref[i]) - x;
                e2 += d * d, r2 += dr * dr;
            }
            expect(e2 <= 1.21 * r2 + 1e-12 * static_cast<double>(y.size()),
                   std::string(k.name) + ": RMS error " + std::to_string(std::sqrt(e2 / y.size())) +
                       ", more than 1.1x that of flexrt's min/max quantizer of the same format (" +
                       std::to_string(std::sqrt(r2 / y.size())) + ")");
            for (int64_t o = 0; o < L.outer; ++o)
                for (int64_t in = 0; in < L.inner; ++in)
                    for (int64_t g = 0; g < L.groups(); ++g) {
                        double lo = 0, hi = 0, amax = 0;  // the zero padding is part of the group
                        bool first = (g + 1) * L.group_size <= L.dim;
                        for (int64_t r = g * L.group_size; r < std::min((g + 1) * L.group_size, L.dim); ++r) {
                            const double v = ops::half_to_float(k.x[static_cast<size_t>((o * L.dim + r) * L.inner + in)]);
                            lo = first ? v : std::min(lo, v), hi = first ? v : std::max(hi, v), first = false;
                            amax = std::max(amax, std::fabs(v));
                        }
                        const double bound = 0.5 * (hi - lo) + group4_bound(lo, hi, amax, L.symmetric);
                        for (int64_t r = g * L.group_size; r < std::min((g + 1) * L.group_size, L.dim); ++r) {
                            const size_t at = static_cast<size_t>((o * L.dim + r) * L.inner + in);
                            const double err = std::fabs(double{ops::half_to_float(y[at])} - ops::half_to_float(k.x[at]));
                            expect(err <= bound, std::string(k.name) + ": element " + std::to_string(at) + " is off by " +
                                                     std::to_string(err) + ", more than half its group's range " + std::to_string(hi - lo));
                        }
                    }
        } else {  // any compressor: relative RMS error at most 10% of the data's
            double e2 = 0, x2 = 0;
            for (size_t i = 0; i < y.size(); ++i) {
                const double x = ops::half_to_float(k.x[i]), d = ops::half_to_float(y[i]) - x;
                e2 += d * d, x2 += x * x;
            }
            expect(e2 <= 0.01 * x2, std::string(k.name) + ": RMS error " + std::to_string(std::sqrt(e2 / y.size())) +
                                        " is more than 10% of the data's RMS " + std::to_string(std::sqrt(x2 / y.size())));
        }
    }
    if (!c.format) note = "no flexrt.group4 extension: held to a 10% relative RMS error";
}

// The compute devices dequantize the plugin's bytes with flexrt's kernels: they must mean the same there.
void group4_format(const Subject& s, const fs::path&, std::string& note) {
    Compressor c(s);
    if (!c.format) {
        note = "no flexrt.group4 extension: nothing to check";
        return;
    }
    for (const Shape& shape : {Shape{200, 96}, Shape{3, 130, 5}, Shape{70}}) {
        const auto x = uniform(shape, -2, 1, 9);
        const auto packed = c.compress(shape, x);
        const auto y = c.decompress(shape, packed);
        std::vector<uint16_t> ours(y.size());
        ops::dequantize_group4(packed.data(), c.layout(shape), ours.data());
        for (size_t i = 0; i < y.size(); ++i)
            expect(y[i] == ours[i], text(shape) + ": element " + std::to_string(i) + " decompresses to " +
                                        std::to_string(ops::half_to_float(y[i])) + ", flexrt's group4 kernels read the same bytes as " +
                                        std::to_string(ops::half_to_float(ours[i])));
    }
}

void non_finite_refused(const Subject& s, const fs::path&, std::string&) {
    Compressor c(s);
    const Shape shape{64, 64};
    for (uint16_t bad : {uint16_t{0x7e00}, uint16_t{0x7c00}, uint16_t{0xfc00}}) {  // NaN, +Inf, -Inf
        auto x = uniform(shape, -1, 1, 4);
        x[1234] = bad;
        const auto d = desc_of(shape);
        std::vector<uint8_t> packed(c.bytes(shape));
        const flexrt_status st = c.c->compress(&d, x.data(), packed.data());
        take_last_plugin_error();
        expect(st != FLEXRT_STATUS_OK, "compress of a tensor holding " + std::string(bad == 0x7e00 ? "NaN" : "Inf") + " returned OK");
    }
}

void no_write_past_the_buffers(const Subject& s, const fs::path&, std::string&) {
    Compressor c(s);
    constexpr size_t kGuard = 256;
    for (const Shape& shape : {Shape{130, 70}, Shape{1}, Shape{64, 64}}) {
        const auto x = uniform(shape, -1, 1, 5);
        const auto d = desc_of(shape);
        const uint64_t b = c.bytes(shape);
        std::vector<uint8_t> packed(b + kGuard, 0xA5);
        expect_ok(c.c->compress(&d, x.data(), packed.data()), "compress of " + text(shape));
        for (size_t i = b; i < packed.size(); ++i)
            expect(packed[i] == 0xA5, "compress of " + text(shape) + " wrote past compressed_bytes (" + std::to_string(b) + ")");
        std::vector<uint16_t> y(x.size() + kGuard, 0xA5A5);
        expect_ok(c.c->decompress(&d, packed.data(), y.data()), "decompress of " + text(shape));
        for (size_t i = x.size(); i < y.size(); ++i)
            expect(y[i] == 0xA5A5, "decompress of " + text(shape) + " wrote past the tensor's " + std::to_string(x.size()) + " elements");
    }
}

void concurrent_calls_agree(const Subject& s, const fs::path&, std::string&) {
    Compressor c(s);
    const Shape shape{512, 1024};
    const auto x = uniform(shape, -1, 1, 6);
    const auto want = c.compress(shape, x);
    const auto want_y = c.decompress(shape, want);
    std::vector<std::vector<uint8_t>> got(4, std::vector<uint8_t>(want.size()));
    std::vector<std::vector<uint16_t>> got_y(4, std::vector<uint16_t>(x.size()));
    std::vector<flexrt_status> st(8, FLEXRT_STATUS_OK);
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                const auto d = desc_of(shape);
                st[2 * t] = c.c->compress(&d, x.data(), got[t].data());
                st[2 * t + 1] = c.c->decompress(&d, want.data(), got_y[t].data());
            });
    }
    for (int t = 0; t < 4; ++t) {
        expect_ok(st[2 * t], "compress on thread " + std::to_string(t));
        expect_ok(st[2 * t + 1], "decompress on thread " + std::to_string(t));
        expect(got[t] == want, "compress on 4 threads at once: thread " + std::to_string(t) + " wrote other bytes");
        expect(got_y[t] == want_y, "decompress on 4 threads at once: thread " + std::to_string(t) + " wrote other values");
    }
}

}  // namespace

const std::vector<CheckSpec>& compressor_checks() {
    static const std::vector<CheckSpec> checks = {
        {"sizes", "compressed_bytes is stable (and the flexrt.group4 layout's size when declared)", &sizes},
        {"error_bounds",
         "random, constant, tiny-range, large and ragged tensors: finite; group4: within 1.1x the min/max quantizer's RMS error",
         &error_bounds},
        {"group4_format", "flexrt.group4 bytes dequantize to the plugin's values with flexrt's own kernels", &group4_format},
        {"non_finite", "NaN and Inf input is refused with an error status", &non_finite_refused},
        {"no_overrun", "compress and decompress write nothing past their buffers", &no_write_past_the_buffers},
        {"concurrent", "4 threads compressing and decompressing at once get the single-threaded bytes", &concurrent_calls_agree},
    };
    return checks;
}

}  // namespace flexrt::conformance
