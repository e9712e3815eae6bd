// Each CUDA op against its CPU variant (the oracle) on fresh random inputs at OPT shapes. Outputs are
// poisoned with NaN first, so an element the kernel forgot fails the check. Error measure (METHOD.md):
// ||gpu - cpu|| / ||cpu||, with fp16 activations and fp32 accumulation well under 5e-3.
// Without a GPU every test is skipped, saying so; they run on the device machine.
#include "ops/ops_cuda.hpp"
#include "core/src/cuda/cuda_check.hpp"
#include "core/src/gpu_upload.hpp"
#include "ops/attention.hpp"
#include "ops/embedding.hpp"
#include "ops/f16.hpp"
#include "ops/group4.hpp"
#include "ops/group4_rows_util.hpp"
#include "ops/layer_norm.hpp"
#include "ops/linear.hpp"
#include "ops/linear_group4.hpp"
#include "ops/sampling.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>
#include <vector>

namespace flexrt::ops {
namespace {

#define REQUIRE_GPU() \
    if (!gpu_available()) GTEST_SKIP() << "no GPU here: the CUDA op tests run on the device machine"

constexpr double kTol = 5e-3;

template <typename T>
struct Dev {
    T* p = nullptr;
    size_t n = 0;
    explicit Dev(size_t count) : n(count) {
        FLEXRT_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(1, n) * sizeof(T)));
        FLEXRT_CUDA_CHECK(cudaMemset(p, 0xff, std::max<size_t>(1, n) * sizeof(T)));  // NaN for fp16: poison
    }
    explicit Dev(const std::vector<T>& v) : Dev(v.size()) {
        FLEXRT_CUDA_CHECK(cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice));
    }
    ~Dev() { cudaFree(p); }
    std::vector<T> get() const {
        std::vector<T> v(n);
        FLEXRT_CUDA_CHECK(cudaDeviceSynchronize());
        FLEXRT_CUDA_CHECK(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
        return v;
    }
};

std::vector<uint16_t> rand_half(size_t n, std::mt19937& rng, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = float_to_half(d(rng));
    return v;
}
std::vector<float> widen(const std::vector<uint16_t>& h) {
    std::vector<float> f(h.size());
    for (size_t i = 0; i < h.size(); ++i) f[i] = half_to_float(h[i]);
    return f;
}
// ||a - b|| / ||b|| with a in fp16; NaN or a size mismatch fails.
double rel_err(const std::vector<uint16_t>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return 1e9;
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double x = half_to_float(a[i]);
        if (std::isnan(x)) return 1e9;
        num += (x - b[i]) * (x - b[i]);
        den += static_cast<double>(b[i]) * b[i];
    }
    return std::sqrt(num / std::max(den, 1e-30));
}

class LayerNormCuda : public ::testing::TestWithParam<int64_t> {};
TEST_P(LayerNormCuda, MatchesCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(GetParam());
    const int64_t rows = 33, h = GetParam();
    auto x = rand_half(rows * h, rng, 2.0f), w = rand_half(h, rng), b = rand_half(h, rng);
    std::vector<float> ref(rows * h);
    layer_norm(widen(x).data(), rows, h, w.data(), b.data(), 1e-5, ref.data());
    Dev<uint16_t> dx(x), dw(w), db(b), dy(rows * h);
    cuda::layer_norm(dx.p, rows, h, dw.p, db.p, 1e-5, dy.p, nullptr);
    EXPECT_LT(rel_err(dy.get(), ref), kTol);
}
INSTANTIATE_TEST_SUITE_P(OptHidden, LayerNormCuda, ::testing::Values(768, 2560, 7168, 12288));

struct LinearCase {
    int64_t rows, in, out;
    bool bias, relu;
};
class LinearCuda : public ::testing::TestWithParam<LinearCase> {};
TEST_P(LinearCuda, MatchesCpu) {
    REQUIRE_GPU();
    const LinearCase c = GetParam();
    std::mt19937 rng(static_cast<unsigned>(c.rows * 7 + c.in));
    auto x = rand_half(c.rows * c.in, rng), w = rand_half(c.out * c.in, rng, 1.0f / std::sqrt(static_cast<float>(c.in)));
    auto b = rand_half(c.out, rng, 0.1f);
    std::vector<float> ref(c.rows * c.out), scratch(linear_scratch_floats(c.in));
    linear(widen(x).data(), c.rows, c.in, w.data(), c.bias ? b.data() : nullptr, c.out, ref.data(), scratch.data(), c.relu);
    Dev<uint16_t> dx(x), dw(w), db(b), dy(c.rows * c.out);
    cuda::linear(dx.p, c.rows, c.in, dw.p, c.bias ? db.p : nullptr, c.out, dy.p, c.relu, nullptr);
    EXPECT_LT(rel_err(dy.get(), ref), kTol);
    if (c.relu) return;
    // With the skip connection added in the epilogue (beta = 1): the same plus the residual, whose scale
    // (1, as a hidden state's) dominates the product's, so a dropped or doubled residual fails by far.
    auto res = rand_half(c.rows * c.out, rng, 1.0f);
    const auto fres = widen(res);
    for (size_t i = 0; i < ref.size(); ++i) ref[i] += fres[i];
    Dev<uint16_t> dres(res);
    cuda::linear(dx.p, c.rows, c.in, dw.p, c.bias ? db.p : nullptr, c.out, dy.p, false, nullptr, dres.p);
    EXPECT_LT(rel_err(dy.get(), ref), kTol) << "with a residual";
}
INSTANTIATE_TEST_SUITE_P(OptShapes, LinearCuda,
                         ::testing::Values(LinearCase{1, 4096, 4096, true, false}, LinearCase{64, 4096, 16384, true, true},
                                           LinearCase{512, 7168, 1024, true, false}, LinearCase{7, 2560, 10240, false, true},
                                           LinearCase{64, 7168, 50272, false, false}),
                         [](const auto& info) {
                             const LinearCase& c = info.param;
                             std::ostringstream os;  // (not string +: GCC 12 warns falsely, -Wrestrict)
                             os << "r" << c.rows << "_in" << c.in << "_out" << c.out << (c.bias ? "_bias" : "") << (c.relu ? "_relu" : "");
                             return os.str();
                         });

TEST(EmbeddingCuda, MatchesCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(5);
    const int64_t batch = 3, seq = 9, h = 768, vocab = 50272, npos = 2050, mask_stride = 20;
    auto wt = rand_half(vocab * h, rng), wp = rand_half(npos * h, rng);
    std::vector<int32_t> ids(batch * seq);
    for (auto& i : ids) i = static_cast<int32_t>(rng() % vocab);
    std::vector<uint8_t> mask(batch * mask_stride, 1);
    mask[0] = mask[1] = 0;  // sequence 0: two pads
    mask[mask_stride] = 0;  // sequence 1: one
    std::vector<float> ref(batch * seq * h);
    embed_tokens(ids.data(), batch * seq, wt.data(), vocab, h, ref.data());
    add_positions(ref.data(), batch, seq, mask.data(), mask_stride, 12, wp.data(), npos, h);  // 3 cached + 9 new
    Dev<int32_t> did(ids);
    Dev<uint16_t> dwt(wt), dwp(wp), dy(batch * seq * h);
    Dev<uint8_t> dm(mask);
    cuda::embed_tokens(did.p, batch * seq, dwt.p, vocab, h, dy.p, nullptr);
    cuda::add_positions(dy.p, batch, seq, dm.p, mask_stride, 12, dwp.p, npos, h, nullptr);
    EXPECT_LT(rel_err(dy.get(), ref), 1e-3);
    ids[4] = static_cast<int32_t>(vocab);
    Dev<int32_t> bad(ids);
    EXPECT_THROW(cuda::embed_tokens(bad.p, batch * seq, dwt.p, vocab, h, dy.p, nullptr), Error);
}

struct AttnCase {
    int64_t batch, seq, past, heads, hd;
    int64_t pad = 0;  // left padding of every sequence, beyond sequence b's b % 3
};
class AttentionCuda : public ::testing::TestWithParam<AttnCase> {};
TEST_P(AttentionCuda, MatchesCpu) {
    REQUIRE_GPU();
    const AttnCase c = GetParam();
    std::mt19937 rng(static_cast<unsigned>(c.seq * 13 + c.hd));
    const int64_t h = c.heads * c.hd, keys = c.past + c.seq, stride = keys + 3;
    // Two groups of sequences, as the engine lays out tiers: [0, g) and [g, batch), each (rows, count, h).
    const int64_t g = c.batch / 2 + 1;
    auto q = rand_half(c.batch * c.seq * h, rng, 0.3f);
    auto pk = rand_half(std::max<int64_t>(1, c.past) * c.batch * h, rng), pv = rand_half(std::max<int64_t>(1, c.past) * c.batch * h, rng);
    auto nk = rand_half(c.seq * c.batch * h, rng), nv = rand_half(c.seq * c.batch * h, rng);
    std::vector<uint8_t> mask(c.batch * stride, 1);
    for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t t = 0; t < c.pad + b % 3 && t < keys; ++t) mask[b * stride + t] = 0;  // left padding of pad + 0, 1, 2
    Dev<uint16_t> dq(q), dpk(pk), dpv(pv), dnk(nk), dnv(nv), dout(c.batch * c.seq * h);
    Dev<uint8_t> dm(mask);
    const auto fpk = widen(pk), fpv = widen(pv), fnk = widen(nk), fnv = widen(nv);
    std::vector<SeqKv> cpu;
    std::vector<cuda::SeqKvHalf> gpu;
    for (int64_t b = 0; b < c.batch; ++b) {
        const int64_t first = b < g ? 0 : g, count = b < g ? g : c.batch - g, local = b - first;
        const int64_t past_base = first * std::max<int64_t>(1, c.past) * h + local * h, new_base = first * c.seq * h + local * h;
        cpu.push_back({fpk.data() + past_base, fpv.data() + past_base, count * h, const_cast<float*>(fnk.data()) + new_base,
                       const_cast<float*>(fnv.data()) + new_base, count * h});
        gpu.push_back({dpk.p + past_base, dpv.p + past_base, count * h, dnk.p + new_base, dnv.p + new_base, count * h});
    }
    std::vector<float> ref(c.batch * c.seq * h);
    attention(widen(q).data(), cpu.data(), c.batch, c.seq, c.past, c.heads, c.hd, mask.data(), stride, ref.data());
    std::vector<uint8_t> raw(gpu.size() * sizeof(cuda::SeqKvHalf));
    std::memcpy(raw.data(), gpu.data(), raw.size());
    Dev<uint8_t> dkv(raw);
    cuda::attention(dq.p, reinterpret_cast<const cuda::SeqKvHalf*>(dkv.p), c.batch, c.seq, c.past, c.heads, c.hd, dm.p, stride, dout.p,
                    nullptr);
    EXPECT_LT(rel_err(dout.get(), ref), kTol);
}
INSTANTIATE_TEST_SUITE_P(OptShapes, AttentionCuda,
                         ::testing::Values(AttnCase{3, 64, 0, 8, 128},    // prefill
                                           AttnCase{5, 1, 100, 8, 128},   // decode
                                           AttnCase{2, 17, 30, 4, 80},    // opt-2.7b's head_dim, a chunk after a cache
                                           AttnCase{4, 1, 511, 56, 128},  // opt-30b decode at context 512
                                           AttnCase{2, 33, 0, 12, 64}, AttnCase{2, 130, 0, 12, 64},  // a ragged last query and key tile
                                           AttnCase{2, 200, 0, 4, 80},                               // opt-2.7b's head_dim, several tiles
                                           AttnCase{2, 512, 0, 4, 128},       // a W1 prompt: 8 key tiles, the causal diagonal
                                           AttnCase{3, 512, 0, 4, 128, 500},  // short prompts left-padded: blocks of pad queries
                                           AttnCase{3, 100, 0, 5, 96},        // opt-175b's head_dim, a ragged last tile
                                           AttnCase{2, 70, 40, 3, 64},        // a prompt chunk after a cache, on the tensor cores
                                           AttnCase{2, 9, 5, 3, 72},          // not a multiple of 16: the CUDA-core tiles
                                           AttnCase{3, 1, 40, 6, 64},         // decode, 2 halves per lane
                                           AttnCase{2, 1, 20, 2, 80}),        // decode, any head_dim
                         [](const auto& info) {
                             const AttnCase& c = info.param;
                             std::ostringstream os;
                             os << "b" << c.batch << "_s" << c.seq << "_past" << c.past << "_h" << c.heads << "_d" << c.hd;
                             if (c.pad) os << "_pad" << c.pad;
                             return os.str();
                         });

// Decode over a compressed KV cache (policy.compress_cache), read as it is, against the GPU's attention over the
// rows dequantize_group4 gives: head_dim 64 and 128 widen each code with one fp32 FMA (code * RN(1 / scale) +
// min, not rounded to fp16), so within 1e-3 relative; other head_dims widen to dequantize's fp16 exactly, so bit
// for bit. Both within the usual tolerance of the CPU's. The engine's layout: (past, batch) row blocks, K and V apart, a byte stride.
// head_dim 128 and 64 (wide loads) and 80 (any), asymmetric and symmetric, left padding and a query with
// nothing visible (the uniform average over every key).
TEST(AttentionCuda, CompressedCacheEqualsDequantizedCache) {
    REQUIRE_GPU();
    struct Case {
        int64_t batch, past, heads, hd;
        bool symmetric;
    };
    for (const Case& c : {Case{5, 100, 8, 128, false}, Case{4, 511, 56, 128, false}, Case{3, 40, 6, 64, true}, Case{2, 20, 2, 80, false}}) {
        const int64_t h = c.heads * c.hd, keys = c.past + 1, stride = keys + 3;
        const Group4Layout rows = Group4Layout::rows(c.past * c.batch, h, 64, c.symmetric);
        std::mt19937 rng(static_cast<unsigned>(c.past));
        auto q = rand_half(c.batch * h, rng, 0.3f), k = rand_half(c.past * c.batch * h, rng), v = rand_half(c.past * c.batch * h, rng);
        auto nk = rand_half(c.batch * h, rng), nv = rand_half(c.batch * h, rng);
        std::vector<uint8_t> pk, pv;
        std::vector<uint16_t> dk, dv;
        ASSERT_NO_FATAL_FAILURE(compress_rows(k, rows, pk, dk));
        ASSERT_NO_FATAL_FAILURE(compress_rows(v, rows, pv, dv));
        std::vector<uint8_t> mask(c.batch * stride, 1);
        for (int64_t b = 0; b < c.batch; ++b)
            for (int64_t t = 0; t < b % 3; ++t) mask[b * stride + t] = 0;
        for (int64_t t = 0; t < keys; ++t) mask[(c.batch - 1) * stride + t] = 0;  // nothing visible
        Dev<uint16_t> dq(q), ddk(dk), ddv(dv), dnk(nk), dnv(nv), plain_out(c.batch * h), packed_out(c.batch * h);
        Dev<uint8_t> dpk(pk), dpv(pv), dm(mask);
        std::vector<cuda::SeqKvHalf> plain, packed;
        std::vector<SeqKv> cpu;
        const auto fk = widen(dk), fv = widen(dv), fnk = widen(nk), fnv = widen(nv);
        for (int64_t b = 0; b < c.batch; ++b) {
            plain.push_back({ddk.p + b * h, ddv.p + b * h, c.batch * h, dnk.p + b * h, dnv.p + b * h, h});
            packed.push_back({reinterpret_cast<const uint16_t*>(dpk.p + b * rows.slab_bytes),
                              reinterpret_cast<const uint16_t*>(dpv.p + b * rows.slab_bytes), c.batch * rows.slab_bytes, dnk.p + b * h,
                              dnv.p + b * h, h});
            cpu.push_back({fk.data() + b * h, fv.data() + b * h, c.batch * h, const_cast<float*>(fnk.data()) + b * h,
                           const_cast<float*>(fnv.data()) + b * h, h});
        }
        auto upload_views = [](const std::vector<cuda::SeqKvHalf>& views) {
            std::vector<uint8_t> raw(views.size() * sizeof(cuda::SeqKvHalf));
            std::memcpy(raw.data(), views.data(), raw.size());
            return Dev<uint8_t>(raw);
        };
        const Dev<uint8_t> plain_views = upload_views(plain), packed_views = upload_views(packed);
        cuda::attention(dq.p, reinterpret_cast<const cuda::SeqKvHalf*>(plain_views.p), c.batch, 1, c.past, c.heads, c.hd, dm.p, stride,
                        plain_out.p, nullptr);
        const cuda::PackedRows pr{static_cast<int64_t>(Group4Layout::rows(1, h, 64, c.symmetric).pairs_at(0)), 64, c.symmetric};
        cuda::attention_decode_packed(dq.p, reinterpret_cast<const cuda::SeqKvHalf*>(packed_views.p), pr, c.batch, c.past, c.heads, c.hd,
                                      dm.p, stride, packed_out.p, nullptr);
        if (c.hd == 64 || c.hd == 128) {
            EXPECT_LT(rel_err(packed_out.get(), widen(plain_out.get())), 1e-3) << "past " << c.past << ", head_dim " << c.hd;
        } else {
            EXPECT_EQ(packed_out.get(), plain_out.get()) << "past " << c.past << ", head_dim " << c.hd;
        }
        std::vector<float> ref(c.batch * h);
        attention(widen(q).data(), cpu.data(), c.batch, 1, c.past, c.heads, c.hd, mask.data(), stride, ref.data());
        EXPECT_LT(rel_err(packed_out.get(), ref), kTol);
    }
}

TEST(ArgmaxCuda, MatchesCpuIncludingTies) {
    REQUIRE_GPU();
    std::mt19937 rng(9);
    const int64_t rows = 16, vocab = 50272;
    auto logits = rand_half(rows * vocab, rng, 3.0f);
    logits[3 * vocab + 100] = logits[3 * vocab + 200] = float_to_half(60000.0f);  // a tie: the first index wins
    Dev<uint16_t> dl(logits);
    Dev<int32_t> ids(rows);
    cuda::argmax(dl.p, rows, vocab, ids.p, nullptr);
    const auto got = ids.get();
    const auto f = widen(logits);
    for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(got[r], argmax(f.data() + r * vocab, vocab)) << "row " << r;
    EXPECT_EQ(got[3], 100);
}

// group4 on the GPU: the same bytes as the CPU variant, quantizing and dequantizing, on random tensors with
// constant and tiny-range groups mixed in, both kernels (4 columns a thread, and any shape).
TEST(Group4Cuda, BitForBitTheCpu) {
    REQUIRE_GPU();
    struct Shape4 {
        std::vector<int64_t> shape;
        int64_t group_dim, group_size;
        bool symmetric;
    };
    for (const Shape4& c : {Shape4{{300, 96}, 0, 64, false}, Shape4{{7, 3, 4, 80}, 3, 64, false}, Shape4{{1024, 7168}, 0, 64, false},
                            Shape4{{130, 24}, 0, 64, true}, Shape4{{10, 96}, 1, 32, false}}) {
        const Group4Layout L = Group4Layout::of(c.shape, c.group_dim, c.group_size, c.symmetric);
        std::mt19937 rng(static_cast<unsigned>(L.elements()));
        auto x = rand_half(static_cast<size_t>(L.elements()), rng, 0.5f);
        for (int64_t i = 0; i < std::min<int64_t>(L.elements(), 4096); i += 3) x[i] = float_to_half(1.25f);  // constant runs
        for (int64_t i = 4096; i < std::min<int64_t>(L.elements(), 8192); ++i) x[i] = float_to_half(1.0f + 1e-4f * (i % 3));  // tiny ranges
        std::vector<uint8_t> cpu_packed(L.bytes(), 0);
        ASSERT_EQ(quantize_group4(x.data(), L, cpu_packed.data()), -1);
        Dev<uint16_t> dx(x);
        Dev<uint8_t> dpacked(L.bytes());
        FLEXRT_CUDA_CHECK(cudaMemset(dpacked.p, 0, L.bytes()));
        Dev<int64_t> bad(std::vector<int64_t>{-1});
        cuda::quantize_group4(dx.p, L, dpacked.p, bad.p, nullptr);
        EXPECT_EQ(bad.get()[0], -1);
        EXPECT_EQ(dpacked.get(), cpu_packed) << "quantized bytes, shape of " << L.elements() << " elements";
        std::vector<uint16_t> cpu_out(static_cast<size_t>(L.elements()));
        dequantize_group4(cpu_packed.data(), L, cpu_out.data());
        Dev<uint8_t> dcpu(cpu_packed);
        Dev<uint16_t> dout(static_cast<size_t>(L.elements()));
        cuda::dequantize_group4(dcpu.p, L, dout.p, nullptr);
        EXPECT_EQ(dout.get(), cpu_out) << "dequantized values";
    }
    // Rows as blocks of their own (the KV cache), h not a multiple of the group: the same bytes, padding included.
    {
        const Group4Layout R = Group4Layout::rows(300, 80, 64, false);
        std::mt19937 rng(9);
        auto x = rand_half(static_cast<size_t>(R.elements()), rng, 1.0f);
        std::vector<uint8_t> cpu_packed(R.bytes());
        ASSERT_EQ(quantize_group4(x.data(), R, cpu_packed.data()), -1);
        Dev<uint16_t> dx(x);
        Dev<uint8_t> dpacked(R.bytes());
        FLEXRT_CUDA_CHECK(cudaMemset(dpacked.p, 0xee, R.bytes()));
        Dev<int64_t> bad(std::vector<int64_t>{-1});
        cuda::quantize_group4(dx.p, R, dpacked.p, bad.p, nullptr);
        EXPECT_EQ(dpacked.get(), cpu_packed) << "row blocks";
        std::vector<uint16_t> cpu_out(static_cast<size_t>(R.elements()));
        dequantize_group4(cpu_packed.data(), R, cpu_out.data());
        Dev<uint16_t> dout(static_cast<size_t>(R.elements()));
        cuda::dequantize_group4(dpacked.p, R, dout.p, nullptr);
        EXPECT_EQ(dout.get(), cpu_out) << "row blocks dequantized";
    }
    // A non-finite value is reported by index.
    const Group4Layout L = Group4Layout::of({128, 8}, 0, 64, false);
    std::vector<uint16_t> x(128 * 8, float_to_half(0.5f));
    x[700] = 0x7c00;
    Dev<uint16_t> dx(x);
    Dev<uint8_t> dpacked(L.bytes());
    Dev<int64_t> bad(std::vector<int64_t>{-1});
    cuda::quantize_group4(dx.p, L, dpacked.p, bad.p, nullptr);
    EXPECT_EQ(bad.get()[0], 700);
}

// The CUDA dequantization divides by a reciprocal and a remainder FMA (Markstein), not an IEEE division per
// element: exhaustively, for every positive finite fp16 scale, every code, asymmetric and symmetric, in the
// weights' layout (a column per scale) and the KV cache's (a group per scale), its values are the CPU's bits.
TEST(Group4Cuda, ExactForEveryScale) {
    REQUIRE_GPU();
    constexpr int64_t kScales = 0x7c00;  // fp16 bit patterns 0x0001 .. 0x7bff are the positive finite scales
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> code(0, 255);
    for (const bool sym : {false, true}) {
        // Weights: one group of 64 rows, a column per scale (column 0: scale 1).
        const Group4Layout W = Group4Layout::of({64, kScales}, 0, 64, sym);
        // Rows: 3968 rows of 512 values = 8 groups each, a group per scale.
        const Group4Layout R = Group4Layout::rows(kScales / 8, 512, 64, sym);
        for (const Group4Layout& L : {W, R}) {
            std::vector<uint8_t> packed(L.bytes(), 0);
            for (int64_t o = 0; o < L.outer; ++o) {
                for (uint64_t b = 0; b < static_cast<uint64_t>(L.groups() * L.group_size / 2 * L.inner); ++b)
                    packed[L.codes_at(o) + b] = static_cast<uint8_t>(code(rng));
                auto* pairs = reinterpret_cast<uint16_t*>(packed.data() + L.pairs_at(o));
                for (int64_t g = 0; g < L.groups(); ++g)
                    for (int64_t c = 0; c < L.inner; ++c) {
                        const int64_t k = (o * L.groups() + g) * L.inner + c;  // the scale's index
                        pairs[(g * 2) * L.inner + c] = k == 0 ? float_to_half(1.0f) : static_cast<uint16_t>(k);
                        pairs[(g * 2 + 1) * L.inner + c] = sym ? 0 : float_to_half(std::normal_distribution<float>(0.0f, 2.0f)(rng));
                    }
            }
            std::vector<uint16_t> cpu(static_cast<size_t>(L.elements()));
            dequantize_group4(packed.data(), L, cpu.data());
            Dev<uint8_t> dpacked(packed);
            Dev<uint16_t> dout(cpu.size());
            cuda::dequantize_group4(dpacked.p, L, dout.p, nullptr);
            const auto gpu = dout.get();
            int64_t differ = 0, first = -1;
            for (size_t i = 0; i < cpu.size(); ++i)
                if (gpu[i] != cpu[i]) differ += 1, first = first < 0 ? static_cast<int64_t>(i) : first;
            EXPECT_EQ(differ, 0) << (L.slab_bytes ? "rows" : "weights") << (sym ? ", symmetric" : "") << ": first at " << first;
        }
    }
}

// The fused 4-bit GEMM against float64 sums over dequantize_group4's weights (the format's values): the
// kernel widens codes with an fp16 FMA (code * fp16(1/scale) + min) instead of an fp32 division, so each
// weight may differ by a couple of fp16 roundings of the group's magnitude: tolerance
// 2e-3 |y| + 2^-9 sum_k |x_k| (|w_k| + |min| + range) per output. Shapes: output tails (not a multiple of the
// 128-feature tile, an odd number of groups), rows below, at and above the 64-row tile, `in` long enough to
// be split over blocks (then summed in a fixed order: two runs give the same bits), ReLU and bias, symmetric.
TEST(Group4LinearCuda, MatchesDequantizedWeightsInFloat64) {
    REQUIRE_GPU();
    struct Case {
        int64_t rows, in, out;
        bool symmetric, relu, bias;
    };
    for (const Case& c :
         {Case{1, 128, 256, false, false, true}, Case{8, 192, 200, false, true, true}, Case{64, 1024, 384, false, false, false},
          Case{100, 4096, 1152, false, true, true}, Case{64, 7168, 1024, true, false, true}, Case{3, 64, 66, false, false, true},
          Case{20, 512, 128, false, false, true}, Case{130, 256, 130, false, false, true}}) {
        const Group4Layout L = Group4Layout::of({c.out, c.in}, 0, 64, c.symmetric);
        ASSERT_TRUE(fusable_group4(L));
        std::mt19937 rng(static_cast<unsigned>(c.rows * 7 + c.in + c.out));
        auto w = rand_half(static_cast<size_t>(c.out * c.in), rng, 0.05f);
        for (int64_t i = 0; i < std::min<int64_t>(c.in, 40); ++i) w[i] = float_to_half(0.01f);  // a constant group column
        auto x = rand_half(static_cast<size_t>(c.rows * c.in), rng, 1.0f);
        auto b = rand_half(static_cast<size_t>(c.out), rng, 0.1f);
        std::vector<uint8_t> packed(L.bytes());
        ASSERT_EQ(quantize_group4(w.data(), L, packed.data()), -1);
        std::vector<uint16_t> wq(static_cast<size_t>(L.elements()));
        dequantize_group4(packed.data(), L, wq.data());
        const auto* pairs = reinterpret_cast<const uint16_t*>(packed.data() + L.code_bytes());
        Dev<uint16_t> dx(x), dy(static_cast<size_t>(c.rows * c.out)), db(b);
        Dev<uint8_t> dp(packed);
        cuda::linear_group4(dx.p, c.rows, dp.p, L, c.bias ? db.p : nullptr, dy.p, c.relu, nullptr);
        const auto y = dy.get();
        cuda::linear_group4(dx.p, c.rows, dp.p, L, c.bias ? db.p : nullptr, dy.p, c.relu, nullptr);
        EXPECT_EQ(dy.get(), y) << "two runs differ";
        double worst = 0;
        for (int64_t r = 0; r < c.rows; ++r)
            for (int64_t o = 0; o < c.out; ++o) {
                const int64_t g = o / 64;
                double ref = c.bias ? half_to_float(b[o]) : 0.0, mag = 0;
                for (int64_t k = 0; k < c.in; ++k) {
                    const double xv = half_to_float(x[r * c.in + k]), wv = half_to_float(wq[o * c.in + k]);
                    const double scale = half_to_float(pairs[(g * 2) * c.in + k]), mn = half_to_float(pairs[(g * 2 + 1) * c.in + k]);
                    ref += xv * wv;
                    mag += std::abs(xv) * (std::abs(wv) + std::abs(mn) + 15.0 / scale);
                }
                if (c.relu) ref = std::max(ref, 0.0);
                const double got = half_to_float(y[r * c.out + o]), tol = 2e-3 * std::abs(ref) + mag / 512;
                worst = std::max(worst, std::abs(got - ref) / tol);
                ASSERT_NEAR(got, ref, tol) << "row " << r << " out " << o << " of " << c.rows << "x" << c.in << "x" << c.out;
            }
        std::printf("linear_group4 %ldx%ldx%ld: worst error %.3f of the tolerance\n", static_cast<long>(c.rows), static_cast<long>(c.in),
                    static_cast<long>(c.out), worst);
    }
}

struct SampleCase {
    double temperature;
    int64_t top_k;
    double top_p;
    float scale;  // of the random logits: small means a flat distribution
};
class SampleCuda : public ::testing::TestWithParam<SampleCase> {};
// The same token as the CPU's sample() for the same logits and draw, or -1 (left to the host) exactly where
// the CPU keeps more candidates than the GPU sorts.
TEST_P(SampleCuda, MatchesCpu) {
    REQUIRE_GPU();
    const SampleCase c = GetParam();
    std::mt19937 rng(static_cast<unsigned>(c.top_k * 31 + c.top_p * 1000));
    const int64_t rows = 48, vocab = 50272;
    auto logits = rand_half(rows * vocab, rng, c.scale);
    for (int64_t v = 0; v < 40; ++v) logits[5 * vocab + 7 * v] = float_to_half(9.0f);  // ties in row 5's head
    std::vector<double> u(rows);
    for (int64_t r = 0; r < rows; ++r) u[r] = uniform(77, static_cast<uint64_t>(r), 3);
    Dev<uint16_t> dl(logits);
    Dev<double> du(u);
    Dev<int32_t> ids(rows);
    cuda::sample(dl.p, rows, vocab, c.temperature, du.p, c.top_k, c.top_p, ids.p, nullptr);
    const auto got = ids.get();
    const auto f = widen(logits);
    int decided = 0;
    for (int64_t r = 0; r < rows; ++r) {
        const int32_t want = sample(f.data() + r * vocab, vocab, c.temperature, u[r], c.top_k, c.top_p);
        if (got[r] == -1) {
            EXPECT_TRUE(c.top_k > cuda::kSampleCandidates || (c.top_k == 0 && c.top_p < 1.0)) << "row " << r;
            continue;
        }
        ++decided;
        EXPECT_EQ(got[r], want) << "row " << r;
    }
    if (c.scale >= 1.0f && c.top_k <= cuda::kSampleCandidates) {
        EXPECT_EQ(decided, rows);  // peaked enough: every row decided on the GPU
    }
}
INSTANTIATE_TEST_SUITE_P(Settings, SampleCuda,
                         ::testing::Values(SampleCase{1.0, 0, 1.0, 3.0f},     // the whole vocabulary
                                           SampleCase{0.7, 0, 1.0, 0.1f},     // flat
                                           SampleCase{0.8, 50, 1.0, 3.0f},    // top-k
                                           SampleCase{1.0, 1024, 1.0, 3.0f},  // top-k at the GPU's limit
                                           SampleCase{1.0, 2000, 1.0, 3.0f},  // beyond it: the host
                                           SampleCase{1.2, 0, 0.9, 12.0f},    // top-p (peaked: the set fits)
                                           SampleCase{1.0, 0, 0.95, 0.05f},   // top-p over a flat row: the host
                                           SampleCase{0.9, 40, 0.8, 3.0f}),   // both
                         [](const auto& info) {
                             const SampleCase& c = info.param;
                             std::ostringstream os;
                             os << "t" << static_cast<int>(c.temperature * 10) << "_k" << c.top_k << "_p" << static_cast<int>(c.top_p * 100)
                                << "_s" << static_cast<int>(c.scale * 100);
                             return os.str();
                         });

}  // namespace
}  // namespace flexrt::ops
