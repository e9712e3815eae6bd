// The ops of one compute device behind one interface, so that models/ compose ops without knowing where
// they run: fp32 activations on the CPU, fp16 on a GPU; fp16 weights everywhere. Every pointer is in the
// device's own memory. Ops are issued in order (a GPU queues them on its compute stream);
// synchronize() waits for all of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace flexrt::ops {

struct Group4Layout;

// Where one sequence's keys and values are (elements of the activation dtype): row r of its cache at
// past_k + r * past_stride, row r of this step's new keys at new_k + r * new_stride.
struct KvView {
    const void* past_k;
    const void* past_v;
    int64_t past_stride;
    void* new_k;
    void* new_v;
    int64_t new_stride;
    // policy.cpu_cache_compute: set when this sequence's past rows are in host memory, where a GPU device
    // runs its decode attention (on host threads); then its mask row (past + 1 entries) in host memory.
    const uint8_t* host_mask = nullptr;
    // policy.compress_cache: the past rows are group4 blocks of this one-row layout (Group4Layout::rows(1, h,
    // ..)), past_k / past_v point at bytes and past_stride counts bytes. A device attends over them as they are
    // (CUDA decode reads the codes, see cuda::attention_decode_packed; the CPU dequantizes them first).
    const Group4Layout* packed = nullptr;
};

// How the next token is chosen from a row of logits (ops::sample's parameters).
struct SamplingParams {
    bool greedy = true;
    double temperature = 1.0;
    int64_t top_k = 0;   // 0: off
    double top_p = 1.0;  // 1: off
};

class Compute {
public:
    virtual ~Compute() = default;
    virtual const char* name() const = 0;
    virtual size_t act_bytes() const = 0;  // bytes of one activation element (4 or 2)

    virtual void layer_norm(const void* x, int64_t rows, int64_t h, const uint16_t* w, const uint16_t* b, double eps, void* y) = 0;
    // y = x W^T + b (+ residual, (rows, out), when not null: the layer's skip connection, added before the
    // rounding to the activation type - one pass over y fewer than a separate add()), or ReLU(x W^T + b).
    virtual void linear(const void* x, int64_t rows, int64_t in, const uint16_t* w, const uint16_t* b, int64_t out, void* y, bool relu,
                        const void* residual) = 0;
    virtual void embed_tokens(const int32_t* ids, int64_t rows, const uint16_t* w_tok, int64_t vocab, int64_t dim, void* out) = 0;
    virtual void add_positions(void* x, int64_t batch, int64_t seq, const uint8_t* mask, int64_t mask_stride, int64_t mask_len,
                               const uint16_t* w_pos, int64_t n_pos, int64_t h) = 0;
    // kv: (batch,) views in host memory (the device variant uploads them).
    virtual void attention(const void* q, const KvView* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, int64_t head_dim,
                           const uint8_t* mask, int64_t mask_stride, void* out) = 0;
    virtual void add(void* y, const void* x, int64_t n) = 0;  // y += x
    virtual void scale(void* x, int64_t n, float s) = 0;
    // This step's keys and values, k and v (batch, seq, h), to where each sequence keeps its new rows:
    // row s of sequence b to kv[b].new_k + s * kv[b].new_stride (likewise v). kv: (batch,) views in host
    // memory. One op for the whole batch (a GPU launches one kernel, not a copy per sequence).
    virtual void write_new_kv(const KvView* kv, int64_t batch, int64_t seq, int64_t h, const void* k, const void* v) = 0;
    // `rows` rows of `width` elements from src (row stride src_stride elements) to dst (dst_stride).
    virtual void copy_rows(void* dst, int64_t dst_stride, const void* src, int64_t src_stride, int64_t rows, int64_t width) = 0;

    // group4-compressed bytes (ops/group4.hpp) to fp16, both in the device's memory, in op order.
    virtual void dequantize_group4(const uint8_t* packed, const Group4Layout& layout, uint16_t* out) = 0;
    // y = x W^T + b, optionally ReLU, with W (out, in) group4-compressed in the device's memory; used when
    // ops::fuses_group4(rows, layout) (ops/linear_group4.hpp): decode reads the 4-bit weights directly.
    virtual void linear_group4(const void* x, int64_t rows, const uint8_t* packed, const Group4Layout& layout, const uint16_t* b, void* y,
                               bool relu) = 0;
    // policy.compress_cache: `layout` (Group4Layout::rows: a block per row) rows of activations to group4
    // blocks, and blocks back to activations, all in the device's memory, in op order. A non-finite value
    // throws BAD_DATA (on a GPU at the next synchronize()).
    virtual void quantize_rows_group4(const void* x, const Group4Layout& layout, uint8_t* out) = 0;
    virtual void dequantize_rows_group4(const uint8_t* packed, const Group4Layout& layout, void* out) = 0;
    // Device memory to device memory, in op order (no host round trip).
    virtual void copy(void* dst, const void* src, size_t bytes) = 0;
    // ids[r] (host memory) for each row of logits (rows, vocab): the argmax, or ops::sample with u[r]
    // (host memory; unused when greedy). Returns when the ids are on the host; on a GPU the logits stay there.
    virtual void next_tokens(const void* logits, int64_t rows, int64_t vocab, const SamplingParams& how, const double* u, int32_t* ids) = 0;

    // Host <-> device memory, in op order; upload returns once `src` may be reused (not when the copy is
    // done), to_host when the bytes are on the host.
    virtual void upload(void* dst, const void* src, size_t bytes) = 0;
    virtual void to_host_floats(float* dst, const void* src, int64_t n) = 0;  // activations -> host fp32
    virtual void synchronize() = 0;
    // Calls fn(arg) once every op issued so far has completed: at once on the CPU, from the driver's thread
    // on a GPU (cudaLaunchHostFunc: fn must not call CUDA). How the engine learns, without waiting, when a
    // layer's outputs may be read and its inputs overwritten.
    virtual void when_done(void (*fn)(void*), void* arg) = 0;

    // Element offset `n` of activation memory.
    void* at(void* p, int64_t n) const { return static_cast<std::byte*>(p) + n * static_cast<int64_t>(act_bytes()); }
    const void* at(const void* p, int64_t n) const { return static_cast<const std::byte*>(p) + n * static_cast<int64_t>(act_bytes()); }
};

std::unique_ptr<Compute> make_cpu_compute();
// The GPU's ops on a stream of their own; throws UNSUPPORTED in builds without CUDA.
std::unique_ptr<Compute> make_cuda_compute();

}  // namespace flexrt::ops
