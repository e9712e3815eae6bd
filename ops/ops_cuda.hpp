// The CUDA variants of the ops (CUDA builds only): fp16 activations and weights in device memory, fp32
// accumulation. Each has its CPU variant (layer_norm.hpp, linear.hpp, ...) as the oracle; tests/ops
// compares them on random inputs at OPT shapes. `stream` is a cudaStream_t. Every launch is checked.
#pragma once

#include "attention.hpp"

#include <cstdint>

namespace flexrt::ops::cuda {

// y = layer_norm(x) * w + b. x, y: (rows, h) fp16 (may alias); w, b: (h,) fp16.
void layer_norm(const uint16_t* x, int64_t rows, int64_t h, const uint16_t* w, const uint16_t* b, double eps, uint16_t* y, void* stream);

// y = x W^T + b (+ residual), then ReLU if asked: cuBLASLt with the bias (and ReLU) fused into the GEMM's
// epilogue and the residual as its C matrix (beta = 1), rounded to fp16 once. x: (rows, in); W: (out, in);
// b: (out,) or nullptr; residual: (rows, out) or nullptr, not y; y: (rows, out). All fp16, fp32 accumulation.
void linear(const uint16_t* x, int64_t rows, int64_t in, const uint16_t* w, const uint16_t* b, int64_t out, uint16_t* y, bool relu,
            void* stream, const uint16_t* residual = nullptr);

// Input errors found by the embedding kernels, as bits of a device int: a caller that passes one reads it at
// its next synchronisation (no round trip per call); with nullptr the op reads its own flag and throws.
enum InputError : int { kBadTokenId = 1, kBadPosition = 2 };
// Throws INVALID_ARGUMENT describing the bits of `flags` (nothing when 0).
void throw_input_errors(int flags, int64_t vocab, int64_t n_pos);

// out[r] = w_tok[ids[r]] (rows, dim) fp16; ids int32 in device memory.
void embed_tokens(const int32_t* ids, int64_t rows, const uint16_t* w_tok, int64_t vocab, int64_t dim, uint16_t* out, void* stream,
                  int* error_flags = nullptr);

// x += learned positions (see embedding.hpp for the rule). x: (batch, seq, h) fp16; mask: (batch, mask_stride) u8.
void add_positions(uint16_t* x, int64_t batch, int64_t seq, const uint8_t* mask, int64_t mask_stride, int64_t mask_len,
                   const uint16_t* w_pos, int64_t n_pos, int64_t h, void* stream, int* error_flags = nullptr);

// Where one sequence's fp16 keys and values are on the device (the fp16 twin of SeqKv).
struct SeqKvHalf {
    const uint16_t* past_k;
    const uint16_t* past_v;
    int64_t past_stride;
    const uint16_t* new_k;
    const uint16_t* new_v;
    int64_t new_stride;
};

// Causal attention with an online softmax: the (seq, keys) score matrix is never stored. Prefill runs on
// the tensor cores (attention_prefill_mma; flash-style WMMA for other multiples of 16 up to 128), else on
// CUDA-core tiles;
// decode splits each (sequence, head)'s keys over 4 warps. q: (batch, seq, heads * head_dim) fp16,
// pre-scaled; kv: (batch,) SeqKvHalf in device memory, rows 8-byte aligned; mask as in attention.hpp;
// out: (batch, seq, heads * head_dim) fp16. head_dim <= 256.
void attention(const uint16_t* q, const SeqKvHalf* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, int64_t head_dim,
               const uint8_t* mask, int64_t mask_stride, uint16_t* out, void* stream);

// The prefill part of attention() (seq > 1) for head_dim 64, 80, 96 and 128 - every OPT model's: mma.sync
// flash attention, scores and probabilities in registers (attention_prefill_cuda.cu). Returns false, doing
// nothing, for other head sizes. Rows 16-byte aligned.
bool attention_prefill_mma(const uint16_t* q, const SeqKvHalf* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads,
                           int64_t head_dim, const uint8_t* mask, int64_t mask_stride, uint16_t* out, void* stream);

// policy.compress_cache: the past rows of every sequence as group4 blocks, one per row (Group4Layout::rows,
// h = heads * head_dim values); past_k / past_v of each SeqKvHalf then point at bytes, past_stride counts bytes.
struct PackedRows {
    int64_t pairs_at;    // bytes from a row's start to its (scale, min) pairs (the row's code bytes)
    int64_t group_size;  // a multiple of 8
    bool symmetric;
};
// Decode attention (seq == 1) over such rows, read compressed: the cache is never written out in fp16 and
// read back. head_dim 64 and 128 (the OPT models' but the smallest): each code becomes fp32 with one FMA,
// code * RN(1 / scale) + min, within an fp32 rounding or two of the format's value; other head_dims: widened
// to the fp16 dequantize_group4 gives, bit for bit, so the result is that of dequantize then attention().
void attention_decode_packed(const uint16_t* q, const SeqKvHalf* kv, const PackedRows& rows, int64_t batch, int64_t past, int64_t heads,
                             int64_t head_dim, const uint8_t* mask, int64_t mask_stride, uint16_t* out, void* stream);

// ids[r] = argmax of row r (first index on ties). logits: (rows, vocab) fp16.
void argmax(const uint16_t* logits, int64_t rows, int64_t vocab, int32_t* ids, void* stream);

// The most candidates the GPU sampler sorts; top-k above it, or a top-p set it cannot hold, is left to
// the host (ids[r] = -1).
constexpr int64_t kSampleCandidates = 1024;
// ids[r] = ops::sample(row r, temperature, u[r], top_k, top_p) with the CPU's semantics and order of
// operations (the same token for the same fp32 logits, up to double rounding), or -1 where the host must
// decide (see kSampleCandidates). logits: (rows, vocab) fp16; u: (rows,) doubles in device memory.
void sample(const uint16_t* logits, int64_t rows, int64_t vocab, double temperature, const double* u, int64_t top_k, double top_p,
            int32_t* ids, void* stream);

}  // namespace flexrt::ops::cuda
