// The group4 format (ops/group4.hpp) against a numpy float64 reference of the same algorithm
// (tools/make_group4_fixture.py, tests/data/group4): random, constant, tiny-range, large-magnitude,
// symmetric and padded groups.
#include "core/src/npy.hpp"
#include "ops/f16.hpp"
#include "ops/group4.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace flexrt::ops {
namespace {

const std::string kDir = std::string(FLEXRT_TEST_DATA_DIR) + "/group4/";

struct Case {
    std::string name;
    std::vector<int64_t> shape;
    int64_t group_dim = 0, group_size = 64;
    bool symmetric = false;
};

std::vector<Case> cases() {
    std::vector<Case> out;
    std::ifstream f(kDir + "cases.txt");
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream is(line);
        Case c;
        std::string shape;
        int sym = 0;
        is >> c.name >> shape >> c.group_dim >> c.group_size >> sym;
        c.symmetric = sym != 0;
        std::istringstream ss(shape);
        for (std::string d; std::getline(ss, d, 'x');) c.shape.push_back(std::stoll(d));
        out.push_back(c);
    }
    return out;
}

double half_ulp(double v) {  // half the fp16 spacing at v: the rounding of the fp16 result
    const double a = std::max(std::abs(v), std::ldexp(1.0, -14));
    return std::ldexp(1.0, static_cast<int>(std::floor(std::log2(a))) - 11);
}

TEST(Group4, MatchesNumpyFloat64Reference) {
    const auto all = cases();
    ASSERT_EQ(all.size(), 7u) << "fixture missing: run tools/make_group4_fixture.py";
    for (const Case& c : all) {
        SCOPED_TRACE(c.name);
        Shape xs, rs;
        const std::string xb = read_npy(kDir + c.name + "_x.npy", DType::f16, &xs);
        const std::string rb = read_npy(kDir + c.name + "_ref.npy", DType::f64, &rs);
        const auto* x = reinterpret_cast<const uint16_t*>(xb.data());
        const auto* ref = reinterpret_cast<const double*>(rb.data());
        const Group4Layout L = Group4Layout::of(c.shape, c.group_dim, c.group_size, c.symmetric);
        ASSERT_EQ(L.elements(), numel(xs));
        std::vector<uint8_t> packed(L.bytes());
        ASSERT_EQ(quantize_group4(x, L, packed.data()), -1);
        std::vector<uint16_t> out(static_cast<size_t>(L.elements()), 0x7e00);
        dequantize_group4(packed.data(), L, out.data());
        double lo = 0, hi = 0;  // the tensor's range (padding zeros included): a bound on any group's step
        for (int64_t i = 0; i < L.elements(); ++i) lo = std::min(lo, double(half_to_float(x[i]))), hi = std::max(hi, double(half_to_float(x[i])));
        const double step = (hi - lo) / (c.symmetric ? 7 : 15);
        int64_t same = 0;
        double worst_vs_input = 0;
        for (int64_t i = 0; i < L.elements(); ++i) {
            const double got = half_to_float(out[i]), want = ref[i], in = half_to_float(x[i]);
            ASSERT_TRUE(std::isfinite(got)) << "element " << i;
            ASSERT_LE(std::abs(got - want), step + half_ulp(want)) << "element " << i;
            same += std::abs(got - want) <= half_ulp(want) * 1.0001;
            worst_vs_input = std::max(worst_vs_input, std::abs(got - in));
        }
        // fp32 vs float64 arithmetic may put a value at a code's rounding boundary on the other side: one step.
        EXPECT_GE(static_cast<double>(same) / L.elements(), 0.995) << same << " of " << L.elements() << " as numpy's";
        if (c.name == "constant_groups") {
            EXPECT_EQ(out, std::vector<uint16_t>(x, x + L.elements()));  // exact
        } else if (c.name == "tiny_range") {
            EXPECT_LT(worst_vs_input, 0.5 / 65504 + half_ulp(1.0001) * 1.01);
        } else if (c.name == "random_weight") {
            EXPECT_LT(worst_vs_input, 0.02 * 10 / 15);  // a step at most (range ~ 10 sigma)
        }
    }
}

TEST(Group4, ErrorBoundPerGroupAndPacking) {
    // Every value within half a step (range / 15 / 2) plus fp16 rounding; 4.5 bits per value at group 64.
    std::vector<int64_t> shape{256, 40};
    const Group4Layout L = Group4Layout::of(shape, 0, 64, false);
    EXPECT_EQ(L.bytes(), 256u * 40 / 2 + 4u * 2 * 40 * 2);
    std::vector<uint16_t> x(256 * 40);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float_to_half(std::sin(0.37 * static_cast<double>(i)) * (1 + i % 7));
    std::vector<uint8_t> packed(L.bytes());
    ASSERT_EQ(quantize_group4(x.data(), L, packed.data()), -1);
    std::vector<uint16_t> out(x.size());
    dequantize_group4(packed.data(), L, out.data());
    for (int64_t g = 0; g < 4; ++g)
        for (int64_t c = 0; c < 40; ++c) {
            double lo = 1e9, hi = -1e9;
            for (int64_t e = 0; e < 64; ++e) {
                const double v = half_to_float(x[(g * 64 + e) * 40 + c]);
                lo = std::min(lo, v), hi = std::max(hi, v);
            }
            for (int64_t e = 0; e < 64; ++e) {
                const int64_t i = (g * 64 + e) * 40 + c;
                const double v = half_to_float(x[i]);
                EXPECT_LE(std::abs(half_to_float(out[i]) - v), (hi - lo) / 30 * 1.01 + half_ulp(v) * 2) << "element " << i;
            }
        }
}

TEST(Group4, NonFiniteInputIsRefusedWithItsIndex) {
    std::vector<uint16_t> x(128, float_to_half(1.0f));
    x[77] = 0x7c00;  // inf
    const Group4Layout L = Group4Layout::of({128}, 0, 64, false);
    std::vector<uint8_t> packed(L.bytes());
    EXPECT_EQ(quantize_group4(x.data(), L, packed.data()), 77);
    x[77] = 0x7e00;  // NaN
    EXPECT_EQ(quantize_group4(x.data(), L, packed.data()), 77);
    EXPECT_THROW(Group4Layout::of({128}, 1, 64, false), std::invalid_argument);
    EXPECT_THROW(Group4Layout::of({128}, 0, 63, false), std::invalid_argument);
}

}  // namespace
}  // namespace flexrt::ops
