// The CUDA ops against the H100's ceilings measured in the same run: device copy bandwidth (bytes read +
// written per second, a 2 GiB cudaMemcpy) and the cuBLASLt fp16 GEMM rate (8192^3). Random data, warm-up,
// median of repeats, CUDA events. Prints a table last. Build: the `flexrt_ops_bench` target (CUDA builds).
#include "core/src/cuda/cuda_check.hpp"
#include "ops/f16.hpp"
#include "ops/group4.hpp"
#include "ops/linear_group4.hpp"
#include "ops/ops_cuda.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace flexrt;

namespace {

struct Dev {
    void* p = nullptr;
    explicit Dev(size_t bytes, unsigned seed) {
        FLEXRT_CUDA_CHECK(cudaMalloc(&p, bytes));
        std::vector<uint16_t> host(bytes / 2);
        std::mt19937 rng(seed);
        std::normal_distribution<float> d(0.0f, 1.0f);
        for (size_t i = 0; i < std::min<size_t>(host.size(), 1 << 24); ++i) host[i] = ops::float_to_half(d(rng) * 0.1f);
        for (size_t i = 1 << 24; i < host.size(); ++i) host[i] = host[i % (1 << 24)];  // random, not zeros
        FLEXRT_CUDA_CHECK(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice));
    }
    ~Dev() { cudaFree(p); }
    template <typename T>
    T* as() const {
        return static_cast<T*>(p);
    }
};

// Median milliseconds of `fn` over `reps` runs after 3 warm-up runs.
double time_ms(const std::function<void()>& fn, int reps = 20) {
    cudaEvent_t a, b;
    FLEXRT_CUDA_CHECK(cudaEventCreate(&a));
    FLEXRT_CUDA_CHECK(cudaEventCreate(&b));
    for (int i = 0; i < 3; ++i) fn();
    std::vector<float> ms;
    for (int i = 0; i < reps; ++i) {
        FLEXRT_CUDA_CHECK(cudaEventRecord(a));
        fn();
        FLEXRT_CUDA_CHECK(cudaEventRecord(b));
        FLEXRT_CUDA_CHECK(cudaEventSynchronize(b));
        float t = 0;
        FLEXRT_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
        ms.push_back(t);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

}  // namespace

int main() {
    std::vector<std::string> rows;
    char line[256];

    // --- ceilings ---
    const size_t copy_bytes = 2ull << 30;
    Dev src(copy_bytes, 1), dst(copy_bytes, 2);
    const double copy_ms = time_ms([&] { FLEXRT_CUDA_CHECK(cudaMemcpy(dst.p, src.p, copy_bytes, cudaMemcpyDeviceToDevice)); });
    const double copy_gbs = 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e9;  // read + write
    const int64_t G = 8192;
    Dev ga(G * G * 2, 3), gb(G * G * 2, 4), gc(G * G * 2, 5);
    const double gemm_ms =
        time_ms([&] { ops::cuda::linear(ga.as<uint16_t>(), G, G, gb.as<uint16_t>(), nullptr, G, gc.as<uint16_t>(), false, nullptr); }, 10);
    const double gemm_tflops = 2.0 * G * G * G / (gemm_ms * 1e-3) / 1e12;
    std::snprintf(line, sizeof line, "ceiling  device copy (read+write)       %9.1f GB/s", copy_gbs);
    rows.push_back(line);
    std::snprintf(line, sizeof line, "ceiling  cuBLASLt fp16 GEMM 8192^3      %9.1f TFLOP/s", gemm_tflops);
    rows.push_back(line);

    // --- decode attention, OPT-30B: batch 64, 56 heads x 128, context 512 (511 cached + 1 new) ---
    {
        const int64_t B = 64, H = 56, D = 128, h = H * D, past = 511;
        Dev q(B * h * 2, 6), k(past * B * h * 2, 7), v(past * B * h * 2, 8), nk(B * h * 2, 9), nv(B * h * 2, 10), out(B * h * 2, 11);
        std::vector<ops::cuda::SeqKvHalf> kv;
        for (int64_t b = 0; b < B; ++b)  // the engine's layout: (rows, batch, h) per tier group
            kv.push_back(
                {k.as<uint16_t>() + b * h, v.as<uint16_t>() + b * h, B * h, nk.as<uint16_t>() + b * h, nv.as<uint16_t>() + b * h, B * h});
        void* kv_dev = nullptr;
        FLEXRT_CUDA_CHECK(cudaMalloc(&kv_dev, kv.size() * sizeof(kv[0])));
        FLEXRT_CUDA_CHECK(cudaMemcpy(kv_dev, kv.data(), kv.size() * sizeof(kv[0]), cudaMemcpyHostToDevice));
        std::vector<uint8_t> mask_h(B * (past + 1), 1);
        void* mask = nullptr;
        FLEXRT_CUDA_CHECK(cudaMalloc(&mask, mask_h.size()));
        FLEXRT_CUDA_CHECK(cudaMemcpy(mask, mask_h.data(), mask_h.size(), cudaMemcpyHostToDevice));
        const double ms = time_ms([&] {
            ops::cuda::attention(q.as<uint16_t>(), static_cast<ops::cuda::SeqKvHalf*>(kv_dev), B, 1, past, H, D,
                                 static_cast<uint8_t*>(mask), past + 1, out.as<uint16_t>(), nullptr);
        });
        const double bytes = 2.0 * (past + 1) * B * h * 2;  // K and V, read once
        const double gbs = bytes / (ms * 1e-3) / 1e9;
        std::snprintf(line, sizeof line, "decode attention 30B b64 ctx512    %9.3f ms %8.1f GB/s = %.2f x copy (target >= 0.70)", ms, gbs,
                      gbs / copy_gbs);
        rows.push_back(line);
        // The same over a 4-bit cache (policy.compress_cache), read compressed: the same rows quantized.
        const ops::Group4Layout R = ops::Group4Layout::rows(past * B, h, 64, false);
        Dev pk(R.bytes(), 16), pv(R.bytes(), 17);
        int64_t* bad = nullptr;
        FLEXRT_CUDA_CHECK(cudaMalloc(&bad, sizeof(int64_t)));
        FLEXRT_CUDA_CHECK(cudaMemset(bad, 0xff, sizeof(int64_t)));
        ops::cuda::quantize_group4(k.as<uint16_t>(), R, pk.as<uint8_t>(), bad, nullptr);
        ops::cuda::quantize_group4(v.as<uint16_t>(), R, pv.as<uint8_t>(), bad, nullptr);
        std::vector<ops::cuda::SeqKvHalf> pkv;
        for (int64_t b = 0; b < B; ++b)
            pkv.push_back({reinterpret_cast<const uint16_t*>(pk.as<uint8_t>() + b * R.slab_bytes),
                           reinterpret_cast<const uint16_t*>(pv.as<uint8_t>() + b * R.slab_bytes), B * R.slab_bytes,
                           nk.as<uint16_t>() + b * h, nv.as<uint16_t>() + b * h, B * h});
        FLEXRT_CUDA_CHECK(cudaMemcpy(kv_dev, pkv.data(), pkv.size() * sizeof(pkv[0]), cudaMemcpyHostToDevice));
        const ops::cuda::PackedRows pr{static_cast<int64_t>(ops::Group4Layout::rows(1, h, 64, false).pairs_at(0)), 64, false};
        const double packed_ms = time_ms([&] {
            ops::cuda::attention_decode_packed(q.as<uint16_t>(), static_cast<ops::cuda::SeqKvHalf*>(kv_dev), pr, B, past, H, D,
                                               static_cast<uint8_t*>(mask), past + 1, out.as<uint16_t>(), nullptr);
        });
        const double packed_gbs = 2.0 * past * B * R.slab_bytes / (packed_ms * 1e-3) / 1e9;
        std::snprintf(line, sizeof line, "decode attention 4-bit cache b64   %9.3f ms vs fp16 %.3f ms = %.2f x (bytes at %.2f x copy)",
                      packed_ms, ms, ms / packed_ms, packed_gbs / copy_gbs);
        rows.push_back(line);
        cudaFree(bad);
        cudaFree(kv_dev);
        cudaFree(mask);
    }

    // --- prefill attention, OPT-30B: batch 8, 56 heads x 128, 512 tokens ---
    {
        const int64_t B = 8, H = 56, D = 128, h = H * D, S = 512;
        Dev q(B * S * h * 2, 12), nk(S * B * h * 2, 13), nv(S * B * h * 2, 14), out(B * S * h * 2, 15);
        std::vector<ops::cuda::SeqKvHalf> kv;
        for (int64_t b = 0; b < B; ++b) kv.push_back({nullptr, nullptr, 0, nk.as<uint16_t>() + b * h, nv.as<uint16_t>() + b * h, B * h});
        void* kv_dev = nullptr;
        FLEXRT_CUDA_CHECK(cudaMalloc(&kv_dev, kv.size() * sizeof(kv[0])));
        FLEXRT_CUDA_CHECK(cudaMemcpy(kv_dev, kv.data(), kv.size() * sizeof(kv[0]), cudaMemcpyHostToDevice));
        std::vector<uint8_t> mask_h(B * S, 1);
        void* mask = nullptr;
        FLEXRT_CUDA_CHECK(cudaMalloc(&mask, mask_h.size()));
        FLEXRT_CUDA_CHECK(cudaMemcpy(mask, mask_h.data(), mask_h.size(), cudaMemcpyHostToDevice));
        const double ms = time_ms(
            [&] {
                ops::cuda::attention(q.as<uint16_t>(), static_cast<ops::cuda::SeqKvHalf*>(kv_dev), B, S, 0, H, D,
                                     static_cast<uint8_t*>(mask), S, out.as<uint16_t>(), nullptr);
            },
            5);
        const double flops = 2.0 * 2.0 * B * H * (S * (S + 1) / 2.0) * D;  // causal QK^T and PV
        std::snprintf(line, sizeof line, "prefill attention 30B b8 s512      %9.3f ms %8.1f TFLOP/s = %.3f x GEMM rate", ms,
                      flops / (ms * 1e-3) / 1e12, flops / (ms * 1e-3) / 1e12 / gemm_tflops);
        rows.push_back(line);
        cudaFree(kv_dev);
        cudaFree(mask);
    }

    // --- group4 dequantization of OPT-30B's fc1 weight (28672 x 7168), against the copy ceiling ---
    {
        const ops::Group4Layout L = ops::Group4Layout::of({28672, 7168}, 0, 64, false);
        Dev x(static_cast<size_t>(L.elements()) * 2, 21), packed(L.bytes(), 22), out(static_cast<size_t>(L.elements()) * 2, 23);
        int64_t* bad = nullptr;
        FLEXRT_CUDA_CHECK(cudaMalloc(&bad, sizeof(int64_t)));
        FLEXRT_CUDA_CHECK(cudaMemset(bad, 0xff, sizeof(int64_t)));
        ops::cuda::quantize_group4(x.as<uint16_t>(), L, packed.as<uint8_t>(), bad, nullptr);  // real codes and scales
        const double ms = time_ms([&] { ops::cuda::dequantize_group4(packed.as<uint8_t>(), L, out.as<uint16_t>(), nullptr); });
        const double gbs = (static_cast<double>(L.bytes()) + L.elements() * 2.0) / (ms * 1e-3) / 1e9;
        std::snprintf(line, sizeof line, "dequantize group4 30B fc1           %9.3f ms %8.1f GB/s = %.2f x copy (target >= 0.75)", ms, gbs,
                      gbs / copy_gbs);
        rows.push_back(line);
    }

    // --- one OPT-30B layer's GEMMs at prefill (32 x 512 rows) and decode (64 rows), against their floors ---
    for (int64_t rows_n : {int64_t{32 * 512}, int64_t{64}}) {
        const int64_t h = 7168, f = 4 * h;
        Dev x(rows_n * f * 2, 16), w(f * h * 2, 17), y(rows_n * f * 2, 18), bias(f * 2, 19);
        const double ms = time_ms(
            [&] {
                for (int i = 0; i < 4; ++i)  // q, k, v, out
                    ops::cuda::linear(x.as<uint16_t>(), rows_n, h, w.as<uint16_t>(), bias.as<uint16_t>(), h, y.as<uint16_t>(), false,
                                      nullptr);
                ops::cuda::linear(x.as<uint16_t>(), rows_n, h, w.as<uint16_t>(), bias.as<uint16_t>(), f, y.as<uint16_t>(), true, nullptr);
                ops::cuda::linear(x.as<uint16_t>(), rows_n, f, w.as<uint16_t>(), bias.as<uint16_t>(), h, y.as<uint16_t>(), false, nullptr);
            },
            10);
        const double flops = 2.0 * rows_n * (4.0 * h * h + 2.0 * h * f), wbytes = 2.0 * (4.0 * h * h + 2.0 * h * f);
        const double floor_ms = std::max(flops / (gemm_tflops * 1e12), wbytes / (copy_gbs * 1e9)) * 1e3;  // bytes moved at the copy's rate
        std::snprintf(line, sizeof line, "30B layer GEMMs %-6s rows %-6lld %9.3f ms, floor %.3f ms = %.2f x floor (target <= 1.25)",
                      rows_n > 64 ? "prefill" : "decode", static_cast<long long>(rows_n), ms, floor_ms, ms / floor_ms);
        rows.push_back(line);
    }

    // --- the fused 4-bit GEMM against the fp16 cuBLASLt GEMM at decode shapes (64 rows), same weights: each GEMM of OPT-30B (the
    // issue's target), and the layer totals of OPT-66B and OPT-175B, whose tile counts split `in` differently ---
    int l2 = 0;
    FLEXRT_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    // Successive timed calls cycle through copies of the weights that together pass twice the L2 cache, as in a layer, where
    // every GEMM has weights of its own: the 4-bit q/k/v/out weights (29 MB) would otherwise be read from L2 after the first call.
    auto copies_for = [&](uint64_t bytes) {
        return static_cast<int>(std::max<uint64_t>(1, (2 * static_cast<uint64_t>(l2) + bytes - 1) / bytes));
    };
    for (const auto& [model, h] : {std::pair<const char*, int64_t>{"30B", 7168}, {"66B", 9216}, {"175B", 12288}}) {
        const bool detail = h == 7168;
        const int64_t f = 4 * h, rows_n = 64;
        Dev x(rows_n * f * 2, 24), y(rows_n * f * 2, 25), bias(f * 2, 26), w(f * h * 2, 27), bad(sizeof(int64_t), 29);
        struct Gemm {
            const char* name;
            int64_t in, out;
            int count;  // per layer
        };
        double fp16_total = 0, fused_total = 0;
        const std::string hs = std::to_string(h), fs = std::to_string(f), qkv = "q/k/v/out " + hs + "->" + hs,
                          fc1 = "fc1 " + hs + "->" + fs, fc2 = "fc2 " + fs + "->" + hs;
        for (const Gemm& g : {Gemm{qkv.c_str(), h, h, 4}, Gemm{fc1.c_str(), h, f, 1}, Gemm{fc2.c_str(), f, h, 1}}) {
            const ops::Group4Layout L = ops::Group4Layout::of({g.out, g.in}, 0, 64, false);
            const uint64_t w_bytes = static_cast<uint64_t>(g.out * g.in) * 2;
            const int fused_copies = copies_for(L.bytes());
            const int fp16_copies = std::min(copies_for(w_bytes), static_cast<int>(static_cast<uint64_t>(f * h * 2) / w_bytes));
            std::vector<std::unique_ptr<Dev>> packed;
            for (int c = 0; c < fused_copies; ++c) {
                packed.push_back(std::make_unique<Dev>(L.bytes(), 28));
                FLEXRT_CUDA_CHECK(cudaMemset(bad.p, 0xff, sizeof(int64_t)));
                ops::cuda::quantize_group4(w.as<uint16_t>() + c % fp16_copies * (w_bytes / 2), L, packed.back()->as<uint8_t>(),
                                           bad.as<int64_t>(), nullptr);
            }
            int turn = 0;
            const double fp16_ms = time_ms([&] {
                ops::cuda::linear(x.as<uint16_t>(), rows_n, g.in, w.as<uint16_t>() + turn++ % fp16_copies * (w_bytes / 2),
                                  bias.as<uint16_t>(), g.out, y.as<uint16_t>(), false, nullptr);
            });
            turn = 0;
            const double fused_ms = time_ms([&] {
                ops::cuda::linear_group4(x.as<uint16_t>(), rows_n, packed[turn++ % fused_copies]->as<uint8_t>(), L, bias.as<uint16_t>(),
                                         y.as<uint16_t>(), false, nullptr);
            });
            fp16_total += g.count * fp16_ms, fused_total += g.count * fused_ms;
            if (!detail) continue;
            const double gbs = static_cast<double>(L.bytes()) / (fused_ms * 1e-3) / 1e9;
            std::snprintf(line, sizeof line, "4-bit GEMM b64 %-22s %7.3f ms vs fp16 %7.3f ms = %.2f x (weights at %.2f x copy)", g.name,
                          fused_ms, fp16_ms, fp16_ms / fused_ms, gbs / copy_gbs);
            rows.push_back(line);
        }
        std::snprintf(line, sizeof line, "4-bit GEMMs of a %-4s layer, b64    %9.3f ms vs fp16 %.3f ms = %.2f x%s", model, fused_total,
                      fp16_total, fp16_total / fused_total, detail ? " (target >= 2)" : "");
        rows.push_back(line);
    }

    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    std::printf("\nflexrt ops bench on %s\n", prop.name);
    for (const auto& r : rows) std::printf("%s\n", r.c_str());
    return 0;
}
