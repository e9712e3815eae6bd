// The CPU ops against straightforward float64 references.
#include "ops/attention.hpp"
#include "ops/attention_host.hpp"
#include "ops/embedding.hpp"
#include "ops/f16.hpp"
#include "ops/layer_norm.hpp"
#include "ops/linear.hpp"
#include "ops/sampling.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace flexrt::ops {
namespace {

std::vector<uint16_t> random_half(size_t n, std::mt19937& rng, float scale = 1.0f) {
    std::uniform_real_distribution<float> u(-scale, scale);
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = float_to_half(u(rng));
    return v;
}
std::vector<float> random_float(size_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng);
    return v;
}

TEST(F16, EveryFiniteHalfRoundTrips) {
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
    std::vector<float> f(65536);
    half_to_float(all.data(), f.data(), 65536);  // vectorised path
    for (uint32_t i = 0; i < 65536; ++i) {
        const uint16_t h = static_cast<uint16_t>(i);
        if (((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff)) continue;  // NaN payloads
        ASSERT_EQ(f[i], half_to_float(h)) << i;
        ASSERT_EQ(float_to_half(f[i]), h) << i;
    }
}

TEST(F16, RoundsToNearestEven) {
    EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), float_to_half(1.0f));  // halfway: even (down)
    EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048), 0x3c02);               // halfway: even (up)
    EXPECT_EQ(float_to_half(65520.0f), 0x7c00);                         // overflow to inf
    EXPECT_EQ(half_to_float(float_to_half(1e-7f)), half_to_float(2));   // subnormal: 1e-7 ~ 1.68 * 2^-24
}

TEST(LayerNorm, MatchesFloat64) {
    std::mt19937 rng(1);
    const int64_t rows = 5, h = 96;
    auto x = random_float(rows * h, rng);
    auto w = random_half(h, rng), b = random_half(h, rng);
    std::vector<float> y(rows * h);
    layer_norm(x.data(), rows, h, w.data(), b.data(), 1e-5, y.data());
    for (int64_t r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < h; ++i) mean += x[r * h + i];
        mean /= h;
        for (int64_t i = 0; i < h; ++i) var += (x[r * h + i] - mean) * (x[r * h + i] - mean);
        var /= h;
        for (int64_t i = 0; i < h; ++i) {
            const double ref = (x[r * h + i] - mean) / std::sqrt(var + 1e-5) * half_to_float(w[i]) + half_to_float(b[i]);
            ASSERT_NEAR(y[r * h + i], ref, 1e-5);
        }
    }
}

// Few rows take the fused fp16 GEMV path, many rows the blocked BLAS path: both against float64.
class Linear : public ::testing::TestWithParam<int64_t> {};

TEST_P(Linear, MatchesFloat64WithBiasReluAndBlocking) {
    std::mt19937 rng(2);
    const int64_t rows = GetParam(), in = 300, out = 20000;  // out * in > one weight block: exercises blocking
    auto x = random_float(rows * in, rng);
    auto w = random_half(out * in, rng, 0.1f), b = random_half(out, rng);
    std::vector<float> y(rows * out), scratch(linear_scratch_floats(in));
    linear(x.data(), rows, in, w.data(), b.data(), out, y.data(), scratch.data(), true);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < out; o += 97) {
            double acc = half_to_float(b[o]);
            for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(x[r * in + i]) * half_to_float(w[o * in + i]);
            ASSERT_NEAR(y[r * out + o], std::max(acc, 0.0), 1e-4) << r << "," << o;
        }
}

INSTANTIATE_TEST_SUITE_P(Rows, Linear, ::testing::Values(1, 7, 9, 33));

TEST(Attention, MatchesFloat64WithCacheMaskAndCausality) {
    std::mt19937 rng(3);
    const int64_t batch = 2, heads = 3, hd = 8, h = heads * hd, past = 5, seq = 3, keys = past + seq;
    auto q = random_float(batch * seq * h, rng);
    // Sequence 0 keeps its cache interleaved with sequence 1's (stride 2h); new rows contiguous.
    auto cache_k = random_float(past * batch * h, rng), cache_v = random_float(past * batch * h, rng);
    auto new_k = random_float(seq * batch * h, rng), new_v = random_float(seq * batch * h, rng);
    std::vector<SeqKv> kv;
    for (int64_t b = 0; b < batch; ++b)
        kv.push_back({cache_k.data() + b * h, cache_v.data() + b * h, 2 * h, new_k.data() + b * seq * h, new_v.data() + b * seq * h, h});
    std::vector<uint8_t> mask(batch * 10, 1);
    mask[0] = mask[1] = 0;  // sequence 0 is left-padded by two
    std::vector<float> out(batch * seq * h);
    attention(q.data(), kv.data(), batch, seq, past, heads, hd, mask.data(), 10, out.data());
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t n = 0; n < heads; ++n)
            for (int64_t s = 0; s < seq; ++s) {
                std::vector<double> p(keys, 0);
                double mx = -1e300, sum = 0;
                auto krow = [&](int64_t t) { return t < past ? &cache_k[t * 2 * h + b * h] : &new_k[(b * seq + t - past) * h]; };
                auto vrow = [&](int64_t t) { return t < past ? &cache_v[t * 2 * h + b * h] : &new_v[(b * seq + t - past) * h]; };
                for (int64_t t = 0; t <= past + s; ++t) {
                    if (!mask[b * 10 + t]) continue;
                    double d = 0;
                    for (int64_t e = 0; e < hd; ++e) d += q[(b * seq + s) * h + n * hd + e] * krow(t)[n * hd + e];
                    p[t] = d, mx = std::max(mx, d);
                }
                for (int64_t t = 0; t <= past + s; ++t)
                    if (mask[b * 10 + t])
                        sum += p[t] = std::exp(p[t] - mx);
                    else
                        p[t] = 0;
                for (int64_t e = 0; e < hd; ++e) {
                    double o = 0;
                    for (int64_t t = 0; t < keys; ++t) o += p[t] / sum * vrow(t)[n * hd + e];
                    ASSERT_NEAR(out[(b * seq + s) * h + n * hd + e], o, 1e-5);
                }
            }
}

TEST(Attention, FullyMaskedRowIsFinite) {
    std::vector<float> q(4, 1.0f), k(4, 1.0f), v(4, 2.0f), out(4);
    SeqKv kv{k.data(), v.data(), 4, k.data(), v.data(), 4};
    std::vector<uint8_t> mask(2, 0);
    attention(q.data(), &kv, 1, 1, 1, 1, 4, mask.data(), 2, out.data());
    for (float x : out) EXPECT_FLOAT_EQ(x, 2.0f);
}

// cpu_cache_compute's host attention over an fp16 cache (in the engine's (rows, sequences, h) layout)
// against the fp32 attention on the same fp16 values widened: fp32 dot products over 257 keys, fp16 output.
class AttentionHost : public ::testing::TestWithParam<int64_t> {};  // head_dim: 8-lane path, or not
TEST_P(AttentionHost, MatchesFp32AttentionOnTheSameHalves) {
    std::mt19937 rng(5);
    std::normal_distribution<float> d(0.0f, 1.0f);
    const int64_t batch = 5, past = 256, heads = 4, hd = GetParam(), h = heads * hd, stride = past + 1;
    auto halves = [&](size_t n, float scale) {
        std::vector<uint16_t> v(n);
        for (auto& x : v) x = float_to_half(d(rng) * scale);
        return v;
    };
    auto widen = [](const std::vector<uint16_t>& v) {
        std::vector<float> f(v.size());
        for (size_t i = 0; i < v.size(); ++i) f[i] = half_to_float(v[i]);
        return f;
    };
    const auto q = halves(batch * h, 0.2f), pk = halves(past * batch * h, 1.0f), pv = halves(past * batch * h, 1.0f),
               nk = halves(batch * h, 1.0f), nv = halves(batch * h, 1.0f);
    std::vector<uint8_t> mask(batch * stride, 1);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t t = 0; t < 3 * b; ++t) mask[b * stride + t] = 0;  // left padding
    std::fill_n(mask.begin() + 4 * stride, stride - 1, 0);             // sequence 4: only its new key
    const auto fq = widen(q), fpk = widen(pk), fpv = widen(pv), fnk = widen(nk), fnv = widen(nv);
    std::vector<SeqKv> ref_kv;
    std::vector<SeqKvHost> host_kv;
    for (int64_t b = 0; b < batch; ++b) {
        ref_kv.push_back({fpk.data() + b * h, fpv.data() + b * h, batch * h, const_cast<float*>(fnk.data()) + b * h,
                          const_cast<float*>(fnv.data()) + b * h, h});
        host_kv.push_back(
            {pk.data() + b * h, pv.data() + b * h, batch * h, nk.data() + b * h, nv.data() + b * h, mask.data() + b * stride});
    }
    std::vector<float> ref(batch * h);
    attention(fq.data(), ref_kv.data(), batch, 1, past, heads, hd, mask.data(), stride, ref.data());
    for (unsigned threads : {1u, 3u, 0u}) {
        std::vector<uint16_t> out(batch * h, 0x7e00);  // NaN: an element not written fails
        attention_decode_host(q.data(), host_kv.data(), batch, past, heads, hd, out.data(), threads);
        double worst = 0;
        for (int64_t i = 0; i < batch * h; ++i) worst = std::max(worst, std::abs(static_cast<double>(half_to_float(out[i])) - ref[i]));
        EXPECT_LT(worst, 2e-3) << threads << " threads";  // fp16 rounding of outputs of magnitude ~1
    }
}
INSTANTIATE_TEST_SUITE_P(HeadDims, AttentionHost, ::testing::Values(64, 128, 20));

TEST(Embedding, PositionsSkipLeftPadding) {
    const int64_t h = 2, npos = 8;
    std::vector<uint16_t> pos(npos * h);
    for (int64_t p = 0; p < npos; ++p) pos[p * h] = pos[p * h + 1] = float_to_half(static_cast<float>(p));
    const uint8_t mask[4] = {0, 1, 1, 1};  // one pad, then three real tokens; then a decode step (seq 1)
    std::vector<float> out(3 * h, 0.5f);
    add_positions(out.data(), 1, 3, mask, 4, 3, pos.data(), npos, h);
    EXPECT_EQ(out[0], 1.5f);  // pad -> position 1
    EXPECT_EQ(out[2], 2.5f);  // first real token -> 2
    EXPECT_EQ(out[4], 3.5f);
    std::fill(out.begin(), out.end(), 0.0f);
    add_positions(out.data(), 1, 1, mask, 4, 4, pos.data(), npos, h);
    EXPECT_EQ(out[0], 4.0f);  // the third real token
    EXPECT_THROW(add_positions(out.data(), 1, 1, mask, 4, 4, pos.data(), 4, h), std::exception);
}

TEST(Embedding, TokensAndVocabularyCheck) {
    std::vector<uint16_t> tok = {float_to_half(1), float_to_half(2), float_to_half(3), float_to_half(4)};  // (2, 2)
    const int32_t ids[2] = {1, 0};
    std::vector<float> out(4);
    embed_tokens(ids, 2, tok.data(), 2, 2, out.data());
    EXPECT_EQ(out, (std::vector<float>{3, 4, 1, 2}));
    const int32_t bad = 2;
    EXPECT_THROW(embed_tokens(&bad, 1, tok.data(), 2, 2, out.data()), std::exception);
}

TEST(Sampling, TopKAndTopP) {
    const float l[5] = {2.0f, 0.5f, 3.0f, 1.0f, 2.5f};  // most likely first: 2, 4, 0, 3, 1
    for (int i = 0; i < 200; ++i) {
        const double u = uniform(4, 1, i);
        EXPECT_EQ(sample(l, 5, 1.0, u, 1), 2);        // top-1 is argmax
        EXPECT_EQ(sample(l, 5, 1.0, u, 0, 1e-6), 2);  // a tiny p keeps only the most likely
        const int32_t t = sample(l, 5, 1.0, u, 2);
        EXPECT_TRUE(t == 2 || t == 4) << t;  // top-2 keeps {2, 4}
    }
    // top-2 renormalises: P(2) = e^3 / (e^3 + e^2.5).
    int twos = 0;
    for (int i = 0; i < 20000; ++i) twos += sample(l, 5, 1.0, uniform(5, 0, i), 2) == 2;
    EXPECT_NEAR(twos / 20000.0, std::exp(3.0) / (std::exp(3.0) + std::exp(2.5)), 0.01);
    // top_p = 0.6 over softmax(l): P(2) ~ 0.44 < 0.6, P(2) + P(4) ~ 0.71 >= 0.6: keeps {2, 4}.
    for (int i = 0; i < 200; ++i) {
        const int32_t t = sample(l, 5, 1.0, uniform(6, 0, i), 0, 0.6);
        EXPECT_TRUE(t == 2 || t == 4) << t;
    }
}

TEST(Sampling, ArgmaxTiesAndTemperature) {
    const float l[4] = {1, 3, 3, 0};
    EXPECT_EQ(argmax(l, 4), 1);
    // Very low temperature samples the argmax; u near 1 with high temperature reaches the last token.
    EXPECT_EQ(sample(l, 4, 1e-3, 0.3), 1);
    EXPECT_EQ(sample(l, 4, 100.0, 0.999), 3);
    // Frequencies follow softmax(l / T).
    int counts[4] = {};
    for (int i = 0; i < 20000; ++i) counts[sample(l, 4, 1.0, uniform(9, 0, i))]++;
    const double z = std::exp(1) + 2 * std::exp(3) + 1;
    EXPECT_NEAR(counts[0] / 20000.0, std::exp(1) / z, 0.01);
    EXPECT_NEAR(counts[3] / 20000.0, 1 / z, 0.01);
    EXPECT_NE(uniform(1, 2, 3), uniform(1, 3, 2));
}

}  // namespace
}  // namespace flexrt::ops
