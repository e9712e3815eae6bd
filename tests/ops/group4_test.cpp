// The group4 format (ops/group4.hpp) against a numpy float64 reference of the same algorithm
// (tools/make_group4_fixture.py, tests/data/group4): random, constant, tiny-range, large-magnitude,
// symmetric and padded groups.
#include "ops/group4.hpp"
#include "core/src/npy.hpp"
#include "ops/attention.hpp"
#include "ops/attention_host.hpp"
#include "ops/compute.hpp"
#include "ops/f16.hpp"
#include "ops/group4_rows_util.hpp"
#include "ops/linear.hpp"
#include "ops/linear_group4.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <random>
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
        for (int64_t i = 0; i < L.elements(); ++i)
            lo = std::min(lo, double(half_to_float(x[i]))), hi = std::max(hi, double(half_to_float(x[i])));
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

// The CPU's fused 4-bit linear: the same values as dequantizing the whole matrix and calling linear() (the
// same widened weights, the same sums: 1e-6 relative for the GEMM's blocking), and within float rounding of
// a float64 product with the dequantized weights. Rows on both sides of the GEMV/GEMM switch, an output
// count that is not a multiple of the group (padding), many blocks of groups (the (vocab, h) head's case).
TEST(Group4Linear, CpuEqualsDequantizeThenLinear) {
    struct Shape3 {
        int64_t rows, in, out;
        bool relu;
    };
    for (const Shape3& c : {Shape3{1, 64, 130, false}, Shape3{5, 128, 64, true}, Shape3{20, 192, 300, true}, Shape3{3, 8192, 200, false}}) {
        const Group4Layout L = Group4Layout::of({c.out, c.in}, 0, 64, false);
        std::mt19937 rng(static_cast<unsigned>(c.rows + c.in + c.out));
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        std::vector<uint16_t> w(static_cast<size_t>(c.out * c.in)), b(static_cast<size_t>(c.out));
        for (auto& v : w) v = float_to_half(0.05f * u(rng));
        for (auto& v : b) v = float_to_half(0.1f * u(rng));
        std::vector<float> x(static_cast<size_t>(c.rows * c.in));
        for (auto& v : x) v = u(rng);
        std::vector<uint8_t> packed(L.bytes());
        ASSERT_EQ(quantize_group4(w.data(), L, packed.data()), -1);
        std::vector<uint16_t> wq(w.size());
        dequantize_group4(packed.data(), L, wq.data());

        std::vector<float> fused(static_cast<size_t>(c.rows * c.out), -7.0f), plain(fused.size());
        linear_group4(x.data(), c.rows, packed.data(), L, b.data(), fused.data(), c.relu);
        std::vector<float> scratch(static_cast<size_t>(linear_scratch_floats(c.in)));
        linear(x.data(), c.rows, c.in, wq.data(), b.data(), c.out, plain.data(), scratch.data(), c.relu);
        for (int64_t r = 0; r < c.rows; ++r)
            for (int64_t o = 0; o < c.out; ++o) {
                double ref = half_to_float(b[o]), mag = 0;
                for (int64_t k = 0; k < c.in; ++k) {
                    ref += static_cast<double>(x[r * c.in + k]) * half_to_float(wq[o * c.in + k]);
                    mag += std::abs(x[r * c.in + k] * half_to_float(wq[o * c.in + k]));
                }
                if (c.relu) ref = std::max(ref, 0.0);
                const float got = fused[r * c.out + o];
                ASSERT_NEAR(got, plain[r * c.out + o], 1e-6 * (mag + 1)) << "row " << r << " out " << o;
                ASSERT_NEAR(got, ref, 1e-5 * (mag + 1)) << "row " << r << " out " << o;
            }
    }
}

// Rows as blocks of their own (the KV cache's layout): block r is byte for byte the compression of row r
// alone, padded to 16 bytes with zeros, and dequantizes to that row's values; h not a multiple of the group.
TEST(Group4, RowBlocksAreEachRowAlone) {
    const int64_t n = 7, h = 80;
    const Group4Layout rows = Group4Layout::rows(n, h, 64, false), one = Group4Layout::of({h}, 0, 64, false);
    EXPECT_EQ(rows.slab_bytes % 16, 0);
    EXPECT_GE(static_cast<uint64_t>(rows.slab_bytes), one.bytes());
    EXPECT_EQ(rows.bytes(), static_cast<uint64_t>(n * rows.slab_bytes));
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<uint16_t> x(static_cast<size_t>(n * h));
    for (auto& v : x) v = float_to_half(u(rng));
    std::vector<uint8_t> packed(rows.bytes(), 0xee);
    ASSERT_EQ(quantize_group4(x.data(), rows, packed.data()), -1);
    std::vector<uint16_t> back(x.size());
    dequantize_group4(packed.data(), rows, back.data());
    for (int64_t r = 0; r < n; ++r) {
        std::vector<uint8_t> alone(static_cast<size_t>(rows.slab_bytes), 0);
        ASSERT_EQ(quantize_group4(x.data() + r * h, one, alone.data()), -1);
        EXPECT_TRUE(std::equal(alone.begin(), alone.end(), packed.begin() + r * rows.slab_bytes)) << "row " << r;
        std::vector<uint16_t> row_back(static_cast<size_t>(h));
        dequantize_group4(alone.data(), one, row_back.data());
        EXPECT_TRUE(std::equal(row_back.begin(), row_back.end(), back.begin() + r * h)) << "row " << r;
    }
}

// A compressed KV cache is attended through the Compute interface as it is stored (KvView::packed: row blocks
// with a byte stride, here the engine's (past, batch) order): the same result, bit for bit, as attention over
// the rows dequantize_group4 gives. Decode with padding and prefill of a chunk after the cache.
TEST(Group4, AttentionOverCompressedRowsEqualsDequantizedRows) {
    const int64_t batch = 3, heads = 4, hd = 32, h = heads * hd, past = 9;
    auto ops = make_cpu_compute();
    for (const int64_t seq : {int64_t{1}, int64_t{3}}) {
        const int64_t keys = past + seq;
        const Group4Layout rows = Group4Layout::rows(past * batch, h, 64, false), one = Group4Layout::rows(1, h, 64, false);
        std::mt19937 rng(static_cast<unsigned>(seq));
        std::normal_distribution<float> d(0.0f, 1.0f);
        std::vector<uint16_t> k(past * batch * h), v(k.size());
        for (auto& x : k) x = float_to_half(d(rng));
        for (auto& x : v) x = float_to_half(d(rng));
        std::vector<uint8_t> pk, pv;
        std::vector<uint16_t> dk, dv;
        ASSERT_NO_FATAL_FAILURE(compress_rows(k, rows, pk, dk));
        ASSERT_NO_FATAL_FAILURE(compress_rows(v, rows, pv, dv));
        std::vector<float> fk(dk.size()), fv(dv.size()), q(batch * seq * h), nk(seq * batch * h), nv(nk.size());
        for (size_t i = 0; i < dk.size(); ++i) fk[i] = half_to_float(dk[i]), fv[i] = half_to_float(dv[i]);
        for (auto& x : q) x = d(rng);
        for (auto& x : nk) x = d(rng);
        for (auto& x : nv) x = d(rng);
        std::vector<uint8_t> mask(batch * keys, 1);
        mask[keys] = 0, mask[2 * keys] = mask[2 * keys + 1] = 0;  // left padding of 0, 1, 2
        std::vector<KvView> packed;
        std::vector<SeqKv> plain;
        for (int64_t b = 0; b < batch; ++b) {
            packed.push_back({pk.data() + b * rows.slab_bytes, pv.data() + b * rows.slab_bytes, batch * rows.slab_bytes, nk.data() + b * h,
                              nv.data() + b * h, batch * h, nullptr, &one});
            plain.push_back({fk.data() + b * h, fv.data() + b * h, batch * h, nk.data() + b * h, nv.data() + b * h, batch * h});
        }
        std::vector<float> want(batch * seq * h), got(want.size(), std::nanf(""));
        attention(q.data(), plain.data(), batch, seq, past, heads, hd, mask.data(), keys, want.data());
        ops->attention(q.data(), packed.data(), batch, seq, past, heads, hd, mask.data(), keys, got.data());
        for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << "seq " << seq << ", element " << i;
    }
}

// cpu_cache_compute over a compressed cache: the host threads widen each head's slice of the compressed rows
// and get, bit for bit, what they get over the rows dequantize_group4 gives (the same fp16 values, the same
// arithmetic). Head_dim 64 (two heads a group) and 128 (two groups a head), asymmetric and symmetric, padding.
TEST(Group4, HostAttentionOverCompressedRowsEqualsDequantizedRows) {
    struct Case {
        int64_t heads, hd;
        bool symmetric;
    };
    for (const Case& c : {Case{4, 64, false}, Case{2, 128, true}, Case{3, 128, false}}) {
        const int64_t batch = 3, past = 11, h = c.heads * c.hd;
        const Group4Layout rows = Group4Layout::rows(past * batch, h, 64, c.symmetric), one = Group4Layout::rows(1, h, 64, c.symmetric);
        std::mt19937 rng(static_cast<unsigned>(c.hd + c.heads));
        std::normal_distribution<float> d(0.0f, 1.0f);
        auto halves = [&](int64_t n, float scale) {
            std::vector<uint16_t> v(static_cast<size_t>(n));
            for (auto& x : v) x = float_to_half(d(rng) * scale);
            return v;
        };
        const auto k = halves(past * batch * h, 1.0f), v = halves(past * batch * h, 1.0f);
        const auto q = halves(batch * h, 0.3f), nk = halves(batch * h, 1.0f), nv = halves(batch * h, 1.0f);
        std::vector<uint8_t> pk, pv;
        std::vector<uint16_t> dk, dv;
        ASSERT_NO_FATAL_FAILURE(compress_rows(k, rows, pk, dk));
        ASSERT_NO_FATAL_FAILURE(compress_rows(v, rows, pv, dv));
        std::vector<uint8_t> mask(batch * (past + 1), 1);
        mask[past + 1] = 0, mask[2 * (past + 1)] = mask[2 * (past + 1) + 1] = 0;
        std::vector<SeqKvHost> plain, packed;
        for (int64_t b = 0; b < batch; ++b) {
            const uint8_t* m = mask.data() + b * (past + 1);
            plain.push_back({dk.data() + b * h, dv.data() + b * h, batch * h, nk.data() + b * h, nv.data() + b * h, m});
            packed.push_back({reinterpret_cast<const uint16_t*>(pk.data() + b * rows.slab_bytes),
                              reinterpret_cast<const uint16_t*>(pv.data() + b * rows.slab_bytes), batch * rows.slab_bytes,
                              nk.data() + b * h, nv.data() + b * h, m, &one});
        }
        std::vector<uint16_t> want(batch * h), got(batch * h, 0xffff);
        attention_decode_host(q.data(), plain.data(), batch, past, c.heads, c.hd, want.data(), 2);
        attention_decode_host(q.data(), packed.data(), batch, past, c.heads, c.hd, got.data(), 2);
        EXPECT_EQ(got, want) << "head_dim " << c.hd << (c.symmetric ? ", symmetric" : "");
    }
}

}  // namespace
}  // namespace flexrt::ops
