// The CPU compute device: fp32 activations, the CPU variants of the ops (the oracle).
#include "compute.hpp"

#include "attention.hpp"
#include "embedding.hpp"
#include "f16.hpp"
#include "group4.hpp"
#include "layer_norm.hpp"
#include "linear.hpp"
#include "linear_group4.hpp"
#include "sampling.hpp"

#include <flexrt/status.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace flexrt::ops {
namespace {

float* f(void* p) { return static_cast<float*>(p); }
const float* f(const void* p) { return static_cast<const float*>(p); }

class CpuCompute final : public Compute {
public:
    const char* name() const override { return "cpu"; }
    size_t act_bytes() const override { return sizeof(float); }
    void layer_norm(const void* x, int64_t rows, int64_t h, const uint16_t* w, const uint16_t* b, double eps, void* y) override {
        ops::layer_norm(f(x), rows, h, w, b, eps, f(y));
    }
    void linear(const void* x, int64_t rows, int64_t in, const uint16_t* w, const uint16_t* b, int64_t out, void* y, bool relu,
                const void* residual) override {
        scratch_.resize(static_cast<size_t>(linear_scratch_floats(in)));
        ops::linear(f(x), rows, in, w, b, out, f(y), scratch_.data(), relu);
        FLEXRT_ASSERT(!residual || !relu);
        if (residual) add(y, residual, rows * out);  // fp32 activations: the same sums as a fused add
    }
    void embed_tokens(const int32_t* ids, int64_t rows, const uint16_t* w, int64_t vocab, int64_t dim, void* out) override {
        ops::embed_tokens(ids, rows, w, vocab, dim, f(out));
    }
    void add_positions(void* x, int64_t batch, int64_t seq, const uint8_t* mask, int64_t stride, int64_t len, const uint16_t* w_pos,
                       int64_t n_pos, int64_t h) override {
        ops::add_positions(f(x), batch, seq, mask, stride, len, w_pos, n_pos, h);
    }
    void attention(const void* q, const KvView* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, int64_t hd,
                   const uint8_t* mask, int64_t stride, void* out) override {
        std::vector<SeqKv> views(static_cast<size_t>(batch));
        for (int64_t b = 0; b < batch; ++b)
            views[b] = {f(kv[b].past_k), f(kv[b].past_v), kv[b].past_stride, f(kv[b].new_k), f(kv[b].new_v), kv[b].new_stride};
        if (batch > 0 && kv[0].packed && past > 0) {  // compressed past rows: dequantized first, into a scratch of (batch, 2, past, h)
            const Group4Layout& row = *kv[0].packed;
            const int64_t h = heads * hd;
            if (row.outer != 1 || row.dim != h)
                throw Error(FLEXRT_STATUS_INVALID_ARGUMENT, "attention: a compressed KV row layout of " + std::to_string(row.outer) +
                                                                " x " + std::to_string(row.dim) + " values, expected 1 x " +
                                                                std::to_string(h));
            packed_past_.resize(static_cast<size_t>(batch * 2 * past * h));
            for (int64_t b = 0; b < batch; ++b) {
                float* k = packed_past_.data() + b * 2 * past * h;
                for (int64_t t = 0; t < past; ++t) {
                    dequantize_rows_group4(static_cast<const uint8_t*>(kv[b].past_k) + t * kv[b].past_stride, row, k + t * h);
                    dequantize_rows_group4(static_cast<const uint8_t*>(kv[b].past_v) + t * kv[b].past_stride, row, k + (past + t) * h);
                }
                views[b].past_k = k, views[b].past_v = k + past * h, views[b].past_stride = h;
            }
        }
        ops::attention(f(q), views.data(), batch, seq, past, heads, hd, mask, stride, f(out));
    }
    void add(void* y, const void* x, int64_t n) override {
        for (int64_t i = 0; i < n; ++i) f(y)[i] += f(x)[i];
    }
    void scale(void* x, int64_t n, float s) override {
        for (int64_t i = 0; i < n; ++i) f(x)[i] *= s;
    }
    void write_new_kv(const KvView* kv, int64_t batch, int64_t seq, int64_t h, const void* k, const void* v) override {
        for (int64_t b = 0; b < batch; ++b)
            for (int64_t r = 0; r < seq; ++r) {
                std::memcpy(f(kv[b].new_k) + r * kv[b].new_stride, f(k) + (b * seq + r) * h, h * sizeof(float));
                std::memcpy(f(kv[b].new_v) + r * kv[b].new_stride, f(v) + (b * seq + r) * h, h * sizeof(float));
            }
    }
    void copy_rows(void* dst, int64_t dst_stride, const void* src, int64_t src_stride, int64_t rows, int64_t width) override {
        for (int64_t r = 0; r < rows; ++r) std::memcpy(f(dst) + r * dst_stride, f(src) + r * src_stride, width * sizeof(float));
    }
    void copy(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    void linear_group4(const void* x, int64_t rows, const uint8_t* packed, const Group4Layout& layout, const uint16_t* b, void* y,
                       bool relu) override {
        ops::linear_group4(f(x), rows, packed, layout, b, f(y), relu);
    }
    void quantize_rows_group4(const void* x, const Group4Layout& layout, uint8_t* out) override {
        half_.resize(static_cast<size_t>(layout.elements()));
        const auto* xf = static_cast<const float*>(x);
        for (int64_t e = 0; e < layout.elements(); ++e) half_[e] = float_to_half(xf[e]);
        if (const int64_t bad = ops::quantize_group4(half_.data(), layout, out); bad >= 0)
            throw Error(FLEXRT_STATUS_BAD_DATA, "a KV cache row to compress holds a non-finite value (element " + std::to_string(bad) +
                                                    " of " + std::to_string(layout.outer) + " rows)");
    }
    void dequantize_rows_group4(const uint8_t* packed, const Group4Layout& layout, void* out) override {
        half_.resize(static_cast<size_t>(layout.elements()));
        ops::dequantize_group4(packed, layout, half_.data());
        half_to_float(half_.data(), static_cast<float*>(out), layout.elements());
    }
    void dequantize_group4(const uint8_t* packed, const Group4Layout& layout, uint16_t* out) override {
        ops::dequantize_group4(packed, layout, out);
    }
    void next_tokens(const void* logits, int64_t rows, int64_t vocab, const SamplingParams& how, const double* u, int32_t* ids) override {
        for (int64_t r = 0; r < rows; ++r) {
            const float* row = static_cast<const float*>(logits) + r * vocab;
            ids[r] = how.greedy ? argmax(row, vocab) : sample(row, vocab, how.temperature, u[r], how.top_k, how.top_p);
        }
    }
    void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    void to_host_floats(float* dst, const void* src, int64_t n) override { std::memcpy(dst, src, n * sizeof(float)); }
    void synchronize() override {}
    void when_done(void (*fn)(void*), void* arg) override { fn(arg); }  // every op has already run

private:
    std::vector<float> scratch_;      // widened weight rows
    std::vector<uint16_t> half_;      // KV cache rows in fp16, the format's input and output
    std::vector<float> packed_past_;  // compressed past KV rows, dequantized for attention
};

}  // namespace

std::unique_ptr<Compute> make_cpu_compute() { return std::make_unique<CpuCompute>(); }

}  // namespace flexrt::ops
