#include "attention_host.hpp"

#include "f16.hpp"
#include "group4.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace flexrt::ops {
namespace {

// fp16 -> fp32 by table: the widening is most of the work per element.
const std::array<float, 65536>& half_table() {
    static const auto table = [] {
        std::array<float, 65536> t{};
        for (uint32_t i = 0; i < 65536; ++i) t[i] = half_to_float(static_cast<uint16_t>(i));
        return t;
    }();
    return table;
}

// One (sequence, head): scores over the past rows and the new one, a softmax, the weighted sum of values.
// `K` supplies the three vector steps (widen the query, dot a key, accumulate a value) for the precision
// and instruction set at hand; the rest is shared.
template <typename K>
[[gnu::always_inline]] inline void one_head(const uint16_t* q, const SeqKvHost& kv, int64_t past, int64_t n, int64_t hd, uint16_t* out,
                                            std::vector<float>& score, std::vector<float>& qf, std::vector<typename K::Acc>& acc) {
    const int64_t keys = past + 1;
    const float lowest = std::numeric_limits<float>::lowest();
    K::widen(q + n * hd, qf.data(), hd);
    auto key = [&](int64_t t) { return t < past ? kv.past_k + t * kv.past_stride + n * hd : kv.new_k + n * hd; };
    auto val = [&](int64_t t) { return t < past ? kv.past_v + t * kv.past_stride + n * hd : kv.new_v + n * hd; };
    float mx = lowest;
    for (int64_t t = 0; t < keys; ++t) {
        score[t] = kv.mask[t] ? K::dot(qf.data(), key(t), hd) : lowest;
        mx = std::max(mx, score[t]);
    }
    double sum = 0;
    std::fill(acc.begin(), acc.end(), typename K::Acc(0));
    for (int64_t t = 0; t < keys; ++t) {
        const double p = std::exp(static_cast<double>(score[t]) - static_cast<double>(mx));  // all masked: uniform
        sum += p;
        if (p != 0) K::axpy(p, val(t), acc.data(), hd);
    }
    for (int64_t e = 0; e < hd; ++e) out[n * hd + e] = float_to_half(static_cast<float>(acc[e] / sum));
}

// Any head_dim, any CPU: fp16 widened by table, values accumulated in double.
struct TableKernels {
    using Acc = double;
    static void widen(const uint16_t* x, float* y, int64_t n) {
        const auto& H = half_table();
        for (int64_t e = 0; e < n; ++e) y[e] = H[x[e]];
    }
    static float dot(const float* qf, const uint16_t* k, int64_t n) {
        const auto& H = half_table();
        float d = 0;
        for (int64_t e = 0; e < n; ++e) d += qf[e] * H[k[e]];
        return d;
    }
    static void axpy(double p, const uint16_t* v, double* acc, int64_t n) {
        const auto& H = half_table();
        for (int64_t e = 0; e < n; ++e) acc[e] += p * H[v[e]];
    }
};

void one_head_table(const uint16_t* q, const SeqKvHost& kv, int64_t past, int64_t n, int64_t hd, uint16_t* out, std::vector<float>& score,
                    std::vector<float>& qf, std::vector<double>& acc) {
    one_head<TableKernels>(q, kv, past, n, hd, out, score, qf, acc);
}

#if defined(__x86_64__)
#define FLEXRT_AVX2 [[gnu::target("avx2,f16c,fma")]]
// AVX2 + F16C + FMA, 8 lanes at a time (head_dim % 8 == 0): the hardware widens fp16, fp32 accumulation
// throughout. About 5x the table version's rate.
struct Avx2Kernels {
    using Acc = float;
    [[gnu::target("avx2,f16c,fma"), gnu::always_inline]] static __m256 load8(const uint16_t* p) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    FLEXRT_AVX2 static void widen(const uint16_t* x, float* y, int64_t n) {
        for (int64_t e = 0; e < n; e += 8) _mm256_storeu_ps(y + e, load8(x + e));
    }
    FLEXRT_AVX2 static float dot(const float* qf, const uint16_t* k, int64_t n) {
        __m256 d = _mm256_setzero_ps();
        for (int64_t e = 0; e < n; e += 8) d = _mm256_fmadd_ps(_mm256_loadu_ps(qf + e), load8(k + e), d);
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1));
        return _mm_cvtss_f32(s4);
    }
    FLEXRT_AVX2 static void axpy(double p, const uint16_t* v, float* acc, int64_t n) {
        const __m256 pv = _mm256_set1_ps(static_cast<float>(p));
        for (int64_t e = 0; e < n; e += 8) _mm256_storeu_ps(acc + e, _mm256_fmadd_ps(pv, load8(v + e), _mm256_loadu_ps(acc + e)));
    }
};
#undef FLEXRT_AVX2

[[gnu::target("avx2,f16c,fma")]] void one_head_avx2(const uint16_t* q, const SeqKvHost& kv, int64_t past, int64_t n, int64_t hd,
                                                    uint16_t* out, std::vector<float>& score, std::vector<float>& qf,
                                                    std::vector<float>& acc) {
    one_head<Avx2Kernels>(q, kv, past, n, hd, out, score, qf, acc);
}

bool have_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
    return yes;
}
#else
bool have_avx2() { return false; }
#endif

// Head n's slice of each compressed past row (K, then V) widened to fp16 into `slice` (2 past rows of
// head_dim), group4's values exactly: a table of the 16 values per group of a row, then a lookup per value.
// Returns the sequence as one_head reads it: past rows of this head only, new rows from head n onwards.
SeqKvHost widen_head(const SeqKvHost& kv, int64_t past, int64_t n, int64_t hd, std::vector<uint16_t>& slice) {
    const Group4Layout& L = *kv.packed;
    const int64_t G = L.group_size, pairs_at = static_cast<int64_t>(L.pairs_at(0));
    slice.resize(static_cast<size_t>(2 * past * hd));
    std::array<uint16_t, 16> table{};
    for (int side = 0; side < 2; ++side) {
        const auto* rows = reinterpret_cast<const uint8_t*>(side ? kv.past_v : kv.past_k);
        for (int64_t t = 0; t < past; ++t) {
            const uint8_t* row = rows + t * kv.past_stride;
            const auto* pr = reinterpret_cast<const uint16_t*>(row + pairs_at);
            uint16_t* dst = slice.data() + (side * past + t) * hd;
            int64_t group = -1;
            for (int64_t e = 0; e < hd; ++e) {
                const int64_t i = n * hd + e;
                if (i / G != group) {
                    group = i / G;
                    const float scale = half_to_float(pr[2 * group]), mn = half_to_float(pr[2 * group + 1]);
                    for (unsigned c = 0; c < 16; ++c) table[c] = float_to_half(group4_value(c, scale, mn, L.symmetric));
                }
                const uint8_t byte = row[i / 2];
                dst[e] = table[i % 2 ? byte & 0xf : byte >> 4];
            }
        }
    }
    return {slice.data(), slice.data() + past * hd, hd, kv.new_k + n * hd, kv.new_v + n * hd, kv.mask, nullptr};
}

}  // namespace

void attention_decode_host(const uint16_t* q, const SeqKvHost* kv, int64_t batch, int64_t past, int64_t heads, int64_t head_dim,
                           uint16_t* out, unsigned threads) {
    const int64_t pairs = batch * heads, h = heads * head_dim;
    if (pairs == 0) return;
    half_table();  // built once, before the threads race for it
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    threads = static_cast<unsigned>(std::min<int64_t>(threads, pairs));
    std::atomic<int64_t> next{0};
    auto work = [&] {
        std::vector<float> score(static_cast<size_t>(past + 1)), qf(static_cast<size_t>(head_dim));
        std::vector<double> acc(static_cast<size_t>(head_dim));
        std::vector<float> acc_f(static_cast<size_t>(head_dim));
        const bool wide = have_avx2() && head_dim % 8 == 0;
        std::vector<uint16_t> slice;  // a compressed cache: this head's past keys then values, widened to fp16
        for (int64_t p; (p = next.fetch_add(1)) < pairs;) {
            const int64_t b = p / heads, n = p % heads;
            const SeqKvHost* seq = &kv[b];
            SeqKvHost widened;
            int64_t head = n;  // the head's index in the rows one_head reads
            if (kv[b].packed && past > 0) {
                widened = widen_head(kv[b], past, n, head_dim, slice);
                seq = &widened, head = 0;
            }
            const uint16_t* qb = q + b * h + (n - head) * head_dim;
            uint16_t* ob = out + b * h + (n - head) * head_dim;
#if defined(__x86_64__)
            if (wide) {
                one_head_avx2(qb, *seq, past, head, head_dim, ob, score, qf, acc_f);
                continue;
            }
#endif
            one_head_table(qb, *seq, past, head, head_dim, ob, score, qf, acc);
        }
    };
    std::vector<std::jthread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
}

}  // namespace flexrt::ops
