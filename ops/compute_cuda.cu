// The GPU compute device: fp16 activations, the CUDA variants of the ops, all on one stream.
#include "compute.hpp"

#include "attention_host.hpp"
#include "cuda_check.cuh"
#include "f16.hpp"
#include "group4.hpp"
#include "linear_group4.hpp"
#include "ops_cuda.hpp"
#include "sampling.hpp"

#include "core/src/pinned_memory.hpp"
#include "core/src/trace.hpp"

#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

namespace flexrt::ops {
namespace {

// Elementwise kernels, 8 halves (16 bytes) a thread where both pointers are 16-byte aligned - the scalar forms
// left the prefill's adds and scalings at half the device's bandwidth - with the same arithmetic per element.
struct AddOp {
    __device__ __half operator()(__half y, __half x, float) const { return __float2half(__half2float(y) + __half2float(x)); }
};
struct ScaleOp {
    __device__ __half operator()(__half y, __half, float s) const { return __float2half(__half2float(y) * s); }
};
struct CopyOp {
    __device__ __half operator()(__half, __half x, float) const { return x; }
};
template <typename Op>
__global__ void elementwise_kernel(__half* y, const __half* x, int64_t n, float s, bool wide) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const Op op;
    if (!wide) {
        if (i < n) y[i] = op(y[i], x ? x[i] : __half(), s);
        return;
    }
    if (i * 8 >= n) return;
    uint4 a = reinterpret_cast<const uint4*>(y)[i], b = x ? reinterpret_cast<const uint4*>(x)[i] : a;
    __half* ha = reinterpret_cast<__half*>(&a);
    const __half* hb = reinterpret_cast<const __half*>(&b);
#pragma unroll
    for (int e = 0; e < 8; ++e) ha[e] = op(ha[e], hb[e], s);
    reinterpret_cast<uint4*>(y)[i] = a;
}
template <typename Op>
void elementwise(__half* y, const __half* x, int64_t n, float s, cudaStream_t stream) {
    const bool wide = n % 8 == 0 && ((reinterpret_cast<uintptr_t>(y) | reinterpret_cast<uintptr_t>(x)) & 15) == 0;
    const int64_t threads = wide ? n / 8 : n;
    elementwise_kernel<Op><<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(y, x, n, s, wide);
    FLEXRT_CUDA_LAUNCH_CHECK();
}

// One block per (sequence, row): its key row then its value row, 16 bytes a thread where aligned.
__global__ void write_new_kv_kernel(const cuda::SeqKvHalf* kv, int64_t seq, int64_t h, const __half* k, const __half* v) {
    const int64_t b = blockIdx.x / seq, r = blockIdx.x % seq;
    const __half* src[2] = {k + (b * seq + r) * h, v + (b * seq + r) * h};
    __half* dst[2] = {const_cast<__half*>(reinterpret_cast<const __half*>(kv[b].new_k)) + r * kv[b].new_stride,
                      const_cast<__half*>(reinterpret_cast<const __half*>(kv[b].new_v)) + r * kv[b].new_stride};
    for (int t = 0; t < 2; ++t) {
        const bool wide = h % 8 == 0 && ((reinterpret_cast<uintptr_t>(src[t]) | reinterpret_cast<uintptr_t>(dst[t])) & 15) == 0;
        if (wide) {
            const auto* s4 = reinterpret_cast<const uint4*>(src[t]);
            auto* d4 = reinterpret_cast<uint4*>(dst[t]);
            for (int64_t i = threadIdx.x; i < h / 8; i += blockDim.x) d4[i] = s4[i];
        } else {
            for (int64_t i = threadIdx.x; i < h; i += blockDim.x) dst[t][i] = src[t][i];
        }
    }
}

const uint16_t* h(const void* p) { return static_cast<const uint16_t*>(p); }
uint16_t* h(void* p) { return static_cast<uint16_t*>(p); }

// Small host -> device copies without waiting for the GPU: each goes through one of a ring of pinned
// buffers, reused once the copy that last read it has run (its event).
class UploadRing {
public:
    UploadRing() {
        for (auto& s : slots_) FLEXRT_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    }
    ~UploadRing() {
        for (auto& s : slots_) {
            cudaEventSynchronize(s.done);
            pinned_free(s.data);
            cudaEventDestroy(s.done);
        }
    }
    UploadRing(const UploadRing&) = delete;
    UploadRing& operator=(const UploadRing&) = delete;

    void copy(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
        if (bytes == 0) return;
        Slot& s = slots_[next_++ % slots_.size()];
        FLEXRT_CUDA_CHECK(cudaEventSynchronize(s.done));
        if (bytes > s.capacity) {
            pinned_free(s.data);
            s.data = nullptr;
            s.capacity = 0;
            s.data = pinned_alloc(bytes);
            s.capacity = bytes;
        }
        std::memcpy(s.data, src, bytes);
        FLEXRT_CUDA_CHECK(cudaMemcpyAsync(dst, s.data, bytes, cudaMemcpyHostToDevice, stream));
        FLEXRT_CUDA_CHECK(cudaEventRecord(s.done, stream));
    }

private:
    struct Slot {
        void* data = nullptr;
        size_t capacity = 0;
        cudaEvent_t done{};
    };
    std::array<Slot, 8> slots_{};
    size_t next_ = 0;
};

// Pinned fp16 elements that grow on demand (contents not kept).
class PinnedVector {
public:
    ~PinnedVector() { pinned_free(p_); }
    size_t size() const { return n_; }
    uint16_t* data() { return p_; }
    void resize(size_t n) {  // the caller has synchronised with every copy that used the old one
        pinned_free(p_);
        p_ = nullptr, n_ = 0;
        p_ = static_cast<uint16_t*>(pinned_alloc(n * sizeof(uint16_t)));
        n_ = n;
    }

private:
    uint16_t* p_ = nullptr;
    size_t n_ = 0;
};

// Device memory that grows on demand (a few KiB: views, draws, sampled ids), freed with the device.
class DeviceScratch {
public:
    ~DeviceScratch() { cudaFree(p_); }
    void* get(size_t bytes, cudaStream_t stream) {
        if (bytes > cap_) {
            FLEXRT_CUDA_CHECK(cudaStreamSynchronize(stream));  // the old one may still be read
            cudaFree(p_);
            p_ = nullptr;
            FLEXRT_CUDA_CHECK(cudaMalloc(&p_, bytes));
            cap_ = bytes;
        }
        return p_;
    }

private:
    void* p_ = nullptr;
    size_t cap_ = 0;
};

// GPU time per op, from CUDA events around each. FLEXRT_PROFILE_OPS=1: summed per kind of op at every
// synchronisation and printed to stderr when the device goes, for finding where a step's time goes. --trace:
// each op a span on the track of the compute stream, placed on the host's clock through an anchor event
// recorded while the stream is idle (at construction and after every synchronisation), so the timeline
// shows when the GPU computed next to when the transfers ran.
class OpProfile {
public:
    OpProfile() : totals_on_(std::getenv("FLEXRT_PROFILE_OPS") != nullptr) {}
    ~OpProfile() {
        if (totals_on_) {
            double total = 0;
            for (const auto& [name, ms] : totals_) total += ms;
            for (const auto& [name, ms] : totals_)
                std::fprintf(stderr, "[ops] %-14s %10.3f ms  %5.1f%%  (%lld calls)\n", name, ms, 100.0 * ms / total,
                             static_cast<long long>(calls_[name]));
        }
        for (auto& m : marks_) cudaEventDestroy(m.begin), cudaEventDestroy(m.end);
        for (auto e : free_) cudaEventDestroy(e);
        if (anchor_) cudaEventDestroy(anchor_);
    }
    template <typename F>
    void time(const char* name, cudaStream_t s, F&& f) {
        if (!totals_on_ && !trace::on()) return f();
        if (!anchor_) {  // the first op of the run: the stream idle first, once
            FLEXRT_CUDA_CHECK(cudaStreamSynchronize(s));
            anchor(s);
        }
        Mark m{name, event(), event()};
        cudaEventRecord(m.begin, s);
        f();
        cudaEventRecord(m.end, s);
        marks_.push_back(m);
    }
    void collect(cudaStream_t s) {  // after a stream synchronisation: every mark has completed, the stream is idle
        for (auto& m : marks_) {
            float ms = 0, from = 0;
            cudaEventElapsedTime(&ms, m.begin, m.end);
            totals_[m.name] += ms;
            ++calls_[m.name];
            if (trace::on() && anchor_ && cudaEventElapsedTime(&from, anchor_, m.begin) == cudaSuccess) {
                if (track_ < 0) track_ = trace::new_track("GPU: compute stream");
                const auto begin =
                    anchor_host_ + std::chrono::duration_cast<trace::Clock::duration>(std::chrono::duration<double, std::milli>(from));
                const auto end = begin + std::chrono::duration_cast<trace::Clock::duration>(std::chrono::duration<double, std::milli>(ms));
                trace::complete_on(track_, "gpu", m.name, begin, end);
            }
            free_.push_back(m.begin), free_.push_back(m.end);
        }
        marks_.clear();
        if (totals_on_ || trace::on()) anchor(s);
    }

private:
    struct Mark {
        const char* name;
        cudaEvent_t begin, end;
    };
    // Only while the stream is idle: the event then completes as it is recorded, at the host time taken with it.
    void anchor(cudaStream_t s) {
        if (!anchor_) FLEXRT_CUDA_CHECK(cudaEventCreate(&anchor_));
        FLEXRT_CUDA_CHECK(cudaEventRecord(anchor_, s));
        anchor_host_ = trace::Clock::now();
    }
    cudaEvent_t event() {
        if (!free_.empty()) {
            cudaEvent_t e = free_.back();
            free_.pop_back();
            return e;
        }
        cudaEvent_t e{};
        FLEXRT_CUDA_CHECK(cudaEventCreate(&e));
        return e;
    }
    bool totals_on_;
    std::vector<Mark> marks_;
    std::vector<cudaEvent_t> free_;
    std::map<const char*, double> totals_;
    std::map<const char*, int64_t> calls_;
    cudaEvent_t anchor_{};
    trace::Clock::time_point anchor_host_;
    int track_ = -1;
};

class CudaCompute final : public Compute {
public:
    CudaCompute() {
        FLEXRT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        input_errors_ = static_cast<int*>(errors_.get(16, stream_));
        bad_cache_ = reinterpret_cast<int64_t*>(static_cast<std::byte*>(errors_.get(16, stream_)) + 8);
        FLEXRT_CUDA_CHECK(cudaMemsetAsync(input_errors_, 0, sizeof(int), stream_));
        FLEXRT_CUDA_CHECK(cudaMemsetAsync(bad_cache_, 0xff, sizeof(int64_t), stream_));  // -1: none
        ids_host_ = static_cast<int32_t*>(pinned_alloc(kIdsHost * sizeof(int32_t)));
        FLEXRT_CUDA_CHECK(cudaEventCreateWithFlags(&rows_down_, cudaEventDisableTiming));
    }
    ~CudaCompute() override {
        cudaStreamSynchronize(stream_);
        pinned_free(ids_host_);
        cudaEventDestroy(rows_down_);
        cudaStreamDestroy(stream_);
    }
    const char* name() const override { return "cuda"; }
    size_t act_bytes() const override { return 2; }
    void layer_norm(const void* x, int64_t rows, int64_t hd, const uint16_t* w, const uint16_t* b, double eps, void* y) override {
        prof_.time("layer_norm", stream_, [&] { cuda::layer_norm(h(x), rows, hd, w, b, eps, h(y), stream_); });
    }
    void linear(const void* x, int64_t rows, int64_t in, const uint16_t* w, const uint16_t* b, int64_t out, void* y, bool relu,
                const void* residual) override {
        prof_.time("linear", stream_, [&] { cuda::linear(h(x), rows, in, w, b, out, h(y), relu, stream_, h(residual)); });
    }
    // Bad ids and positions set bits of a device flag read at the next synchronisation.
    void embed_tokens(const int32_t* ids, int64_t rows, const uint16_t* w, int64_t vocab, int64_t dim, void* out) override {
        vocab_ = vocab;
        prof_.time("embed", stream_, [&] { cuda::embed_tokens(ids, rows, w, vocab, dim, h(out), stream_, input_errors_); });
    }
    void add_positions(void* x, int64_t batch, int64_t seq, const uint8_t* mask, int64_t stride, int64_t len, const uint16_t* w_pos,
                       int64_t n_pos, int64_t hd) override {
        n_pos_ = n_pos;
        prof_.time("embed", stream_,
                   [&] { cuda::add_positions(h(x), batch, seq, mask, stride, len, w_pos, n_pos, hd, stream_, input_errors_); });
    }
    void write_new_kv(const KvView* kv, int64_t batch, int64_t seq, int64_t hd, const void* k, const void* v) override {
        if (batch == 0 || seq == 0) return;
        const auto* dev = device_views(kv, batch);
        prof_.time("write_new_kv", stream_, [&] {
            write_new_kv_kernel<<<static_cast<unsigned>(batch * seq), 128, 0, stream_>>>(dev, seq, hd, static_cast<const __half*>(k),
                                                                                         static_cast<const __half*>(v));
            FLEXRT_CUDA_LAUNCH_CHECK();
        });
    }
    void attention(const void* q, const KvView* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, int64_t hd,
                   const uint8_t* mask, int64_t stride, void* out) override {
        const auto on_host = [](const KvView& v) { return v.host_mask != nullptr; };
        if (seq == 1 && std::any_of(kv, kv + batch, on_host)) return attention_split(q, kv, batch, past, heads, hd, mask, stride, out);
        if (batch > 0 && kv[0].packed && past > 0) return attention_packed(q, kv, batch, seq, past, heads, hd, mask, stride, out);
        const auto* dev = device_views(kv, batch);
        prof_.time(seq == 1 ? "attn_decode" : "attn_prefill", stream_,
                   [&] { cuda::attention(h(q), dev, batch, seq, past, heads, hd, mask, stride, h(out), stream_); });
    }
    // Compressed past rows (policy.compress_cache) on the device: decode reads them as they are. Nothing else
    // attends over a cache with more than one query row (prefill has no past).
    void attention_packed(const void* q, const KvView* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, int64_t hd,
                          const uint8_t* mask, int64_t stride, void* out) {
        if (seq != 1)
            throw Error(FLEXRT_STATUS_UNSUPPORTED,
                        "attention over a compressed KV cache with " + std::to_string(seq) + " query rows: decode only (one a sequence)");
        const auto* dev = device_views(kv, batch);
        const cuda::PackedRows rows = packed_rows(*kv[0].packed, heads * hd);
        prof_.time("attn_decode", stream_,
                   [&] { cuda::attention_decode_packed(h(q), dev, rows, batch, past, heads, hd, mask, stride, h(out), stream_); });
    }
    static cuda::PackedRows packed_rows(const Group4Layout& row, int64_t h) {
        if (row.outer != 1 || row.dim != h)
            throw Error(FLEXRT_STATUS_INVALID_ARGUMENT, "attention: a compressed KV row layout of " + std::to_string(row.outer) + " x " +
                                                            std::to_string(row.dim) + " values, expected 1 x " + std::to_string(h));
        return {static_cast<int64_t>(row.pairs_at(0)), row.group_size, row.symmetric};
    }
    // Decode with some caches in host memory (cpu_cache_compute): their queries and new rows go down, the
    // host threads attend over the cache where it is while the GPU attends for the other sequences, and the
    // outputs come back up in op order.
    void attention_split(const void* q, const KvView* kv, int64_t batch, int64_t past, int64_t heads, int64_t hd, const uint8_t* mask,
                         int64_t stride, void* out) {
        const int64_t width = heads * hd;
        const size_t row = static_cast<size_t>(width) * 2;           // bytes
        const size_t need = static_cast<size_t>(batch * width) * 3;  // q, new k, new v of the host sequences
        if (host_rows_.size() < need) host_rows_.resize(need);
        auto* qh = host_rows_.data();
        auto* kh = qh + batch * width;
        auto* vh = kh + batch * width;
        for (int64_t b = 0; b < batch; ++b)
            if (kv[b].host_mask) {
                FLEXRT_CUDA_CHECK(
                    cudaMemcpyAsync(qh + b * width, static_cast<const std::byte*>(q) + b * row, row, cudaMemcpyDeviceToHost, stream_));
                FLEXRT_CUDA_CHECK(cudaMemcpyAsync(kh + b * width, kv[b].new_k, row, cudaMemcpyDeviceToHost, stream_));
                FLEXRT_CUDA_CHECK(cudaMemcpyAsync(vh + b * width, kv[b].new_v, row, cudaMemcpyDeviceToHost, stream_));
            }
        FLEXRT_CUDA_CHECK(cudaEventRecord(rows_down_, stream_));
        for (int64_t b = 0; b < batch;) {  // the device's runs of sequences, on the GPU meanwhile
            int64_t e = b;
            while (e < batch && !kv[e].host_mask) ++e;
            if (e > b) {
                const auto* dev = device_views(kv + b, e - b);
                prof_.time("attn_decode", stream_, [&] {
                    if (kv[b].packed && past > 0)  // compressed rows on the device, read as they are
                        cuda::attention_decode_packed(h(q) + b * width, dev, packed_rows(*kv[b].packed, width), e - b, past, heads, hd,
                                                      mask + b * stride, stride, h(out) + b * width, stream_);
                    else
                        cuda::attention(h(q) + b * width, dev, e - b, 1, past, heads, hd, mask + b * stride, stride, h(out) + b * width,
                                        stream_);
                });
            }
            while (e < batch && kv[e].host_mask) ++e;
            b = e;
        }
        FLEXRT_CUDA_CHECK(cudaEventSynchronize(rows_down_));
        std::vector<SeqKvHost> seqs;
        std::vector<int64_t> which;
        for (int64_t b = 0; b < batch; ++b)
            if (kv[b].host_mask) {
                seqs.push_back({static_cast<const uint16_t*>(kv[b].past_k), static_cast<const uint16_t*>(kv[b].past_v), kv[b].past_stride,
                                kh + b * width, vh + b * width, kv[b].host_mask, kv[b].packed});
                which.push_back(b);
            }
        // Gather the host sequences' queries, attend, and scatter the outputs back to their rows.
        host_q_.resize(which.size() * width);
        host_out_.resize(which.size() * width);
        for (size_t i = 0; i < which.size(); ++i) std::memcpy(host_q_.data() + i * width, qh + which[i] * width, row);
        attention_decode_host(host_q_.data(), seqs.data(), static_cast<int64_t>(seqs.size()), past, heads, hd, host_out_.data());
        for (size_t i = 0; i < which.size(); ++i) upload(static_cast<std::byte*>(out) + which[i] * row, host_out_.data() + i * width, row);
    }
    void add(void* y, const void* x, int64_t n) override {
        if (n == 0) return;
        prof_.time("add", stream_, [&] { elementwise<AddOp>(static_cast<__half*>(y), static_cast<const __half*>(x), n, 0.0f, stream_); });
    }
    void scale(void* x, int64_t n, float s) override {
        if (n == 0) return;
        prof_.time("scale", stream_, [&] { elementwise<ScaleOp>(static_cast<__half*>(x), nullptr, n, s, stream_); });
    }
    void copy_rows(void* dst, int64_t dst_stride, const void* src, int64_t src_stride, int64_t rows, int64_t width) override {
        if (rows == 0) return;
        prof_.time("copy_rows", stream_, [&] {
            FLEXRT_CUDA_CHECK(
                cudaMemcpy2DAsync(dst, dst_stride * 2, src, src_stride * 2, width * 2, rows, cudaMemcpyDeviceToDevice, stream_));
        });
    }
    void linear_group4(const void* x, int64_t rows, const uint8_t* packed, const Group4Layout& layout, const uint16_t* b, void* y,
                       bool relu) override {
        prof_.time("linear_group4", stream_, [&] {
            cuda::linear_group4(static_cast<const uint16_t*>(x), rows, packed, layout, b, static_cast<uint16_t*>(y), relu, stream_);
        });
    }
    void quantize_rows_group4(const void* x, const Group4Layout& layout, uint8_t* out) override {
        prof_.time("quantize_cache", stream_, [&] { cuda::quantize_group4(h(x), layout, out, bad_cache_, stream_); });
    }
    void dequantize_rows_group4(const uint8_t* packed, const Group4Layout& layout, void* out) override {
        prof_.time("dequantize_cache", stream_, [&] { cuda::dequantize_group4(packed, layout, h(out), stream_); });
    }
    void dequantize_group4(const uint8_t* packed, const Group4Layout& layout, uint16_t* out) override {
        prof_.time("dequantize", stream_, [&] { cuda::dequantize_group4(packed, layout, out, stream_); });
    }
    void copy(void* dst, const void* src, size_t bytes) override {
        if (!bytes) return;
        // A kernel where it can: the hidden states move between the engine's buffers by this, 1 MB at a time in
        // decode, where cudaMemcpyAsync took ~8 us each (W1 profile) for a sub-microsecond copy.
        const bool halves = bytes % 16 == 0 && ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) & 15) == 0;
        prof_.time("copy", stream_, [&] {
            if (halves)
                elementwise<CopyOp>(static_cast<__half*>(dst), static_cast<const __half*>(src), static_cast<int64_t>(bytes / 2), 0.0f,
                                    stream_);
            else
                FLEXRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
        });
    }
    void next_tokens(const void* logits, int64_t rows, int64_t vocab, const SamplingParams& how, const double* u, int32_t* ids) override {
        if (rows == 0) return;
        FLEXRT_ASSERT(rows <= kIdsHost);
        auto* ids_dev = static_cast<int32_t*>(ids_dev_.get(rows * sizeof(int32_t), stream_));
        if (how.greedy) {
            prof_.time("sample", stream_, [&] { cuda::argmax(h(logits), rows, vocab, ids_dev, stream_); });
        } else {
            auto* u_dev = static_cast<double*>(u_dev_.get(rows * sizeof(double), stream_));
            ring_.copy(u_dev, u, rows * sizeof(double), stream_);
            prof_.time("sample", stream_,
                       [&] { cuda::sample(h(logits), rows, vocab, how.temperature, u_dev, how.top_k, how.top_p, ids_dev, stream_); });
        }
        FLEXRT_CUDA_CHECK(cudaMemcpyAsync(ids_host_, ids_dev, rows * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
        synchronize();
        std::vector<float> row;
        for (int64_t r = 0; r < rows; ++r) {
            ids[r] = ids_host_[r];
            if (ids[r] >= 0) continue;
            row.resize(static_cast<size_t>(vocab));  // a candidate set larger than the GPU sorts: decided here
            to_host_floats(row.data(), static_cast<const std::byte*>(logits) + r * vocab * 2, vocab);
            ids[r] = sample(row.data(), vocab, how.temperature, u[r], how.top_k, how.top_p);
        }
    }
    void upload(void* dst, const void* src, size_t bytes) override {
        if (bytes <= kRingMax) return ring_.copy(dst, src, bytes, stream_);
        // Large (weights at load time): straight from pageable memory, done before we return.
        FLEXRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
        FLEXRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    void to_host_floats(float* dst, const void* src, int64_t n) override {
        staging_.resize(static_cast<size_t>(n));
        FLEXRT_CUDA_CHECK(cudaMemcpyAsync(staging_.data(), src, n * 2, cudaMemcpyDeviceToHost, stream_));
        synchronize();
        half_to_float(staging_.data(), dst, n);
    }
    // Also where input errors found by the kernels since the last synchronisation are reported.
    void synchronize() override {
        FLEXRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
        prof_.collect(stream_);
        int flags = 0;
        FLEXRT_CUDA_CHECK(cudaMemcpy(&flags, input_errors_, sizeof flags, cudaMemcpyDeviceToHost));
        if (flags) {
            FLEXRT_CUDA_CHECK(cudaMemset(input_errors_, 0, sizeof(int)));
            cuda::throw_input_errors(flags, vocab_, n_pos_);
        }
        int64_t bad = -1;
        FLEXRT_CUDA_CHECK(cudaMemcpy(&bad, bad_cache_, sizeof bad, cudaMemcpyDeviceToHost));
        if (bad >= 0) {
            FLEXRT_CUDA_CHECK(cudaMemset(bad_cache_, 0xff, sizeof bad));
            throw Error(FLEXRT_STATUS_BAD_DATA, "a KV cache row to compress held a non-finite value (element " + std::to_string(bad) + ")");
        }
    }
    void when_done(void (*fn)(void*), void* arg) override { FLEXRT_CUDA_CHECK(cudaLaunchHostFunc(stream_, fn, arg)); }

private:
    // The views in device memory: uploaded when they differ from the last ones (write_new_kv and then
    // attention of one layer pass the same views: one upload).
    const cuda::SeqKvHalf* device_views(const KvView* kv, int64_t batch) {
        next_views_.resize(static_cast<size_t>(batch));
        for (int64_t b = 0; b < batch; ++b)
            next_views_[b] = {h(kv[b].past_k), h(kv[b].past_v), kv[b].past_stride, h(kv[b].new_k), h(kv[b].new_v), kv[b].new_stride};
        const size_t bytes = next_views_.size() * sizeof(cuda::SeqKvHalf);
        const bool same = next_views_.size() == views_.size() && std::memcmp(next_views_.data(), views_.data(), bytes) == 0;
        if (!same || !views_uploaded_) {
            views_.swap(next_views_);
            views_uploaded_ = views_dev_.get(bytes, stream_);
            ring_.copy(views_uploaded_, views_.data(), bytes, stream_);
        }
        return static_cast<const cuda::SeqKvHalf*>(views_uploaded_);
    }

    static constexpr int64_t kIdsHost = 1 << 16;  // sequences per GPU batch, at most
    static constexpr size_t kRingMax = 4u << 20;  // larger uploads do not go through the pinned ring
    cudaStream_t stream_{};
    OpProfile prof_;
    UploadRing ring_;
    DeviceScratch errors_, views_dev_, ids_dev_, u_dev_;
    int* input_errors_ = nullptr;
    int64_t* bad_cache_ = nullptr;  // quantize's first non-finite element of the KV cache rows, -1: none
    int32_t* ids_host_ = nullptr;
    int64_t vocab_ = 0, n_pos_ = 0;
    std::vector<cuda::SeqKvHalf> views_, next_views_;  // the last uploaded, and the ones being built
    void* views_uploaded_ = nullptr;
    PinnedVector host_rows_;  // cpu_cache_compute: q and new K, V rows on their way down
    cudaEvent_t rows_down_{};
    std::vector<uint16_t> host_q_, host_out_;
    std::vector<uint16_t> staging_;
};

}  // namespace

std::unique_ptr<Compute> make_cuda_compute() { return std::make_unique<CudaCompute>(); }

}  // namespace flexrt::ops
