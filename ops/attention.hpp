#pragma once

#include <cstdint>

namespace flexrt::ops {

// Where one sequence's keys and values are (fp32). Row r of its cache (position r) starts at
// past_k + r * past_stride; row r of this step's new keys at new_k + r * new_stride. Within a row, head n
// starts at n * head_dim. Strides differ per sequence: each tier keeps its sequences in its own layout.
struct SeqKv {
    const float* past_k;
    const float* past_v;
    int64_t past_stride;
    float* new_k;  // written by the attention layer before attention() reads it
    float* new_v;
    int64_t new_stride;
};

// Causal multi-head attention of this step's queries over the cached and the new positions.
// q: (batch, seq, heads * head_dim), already scaled by head_dim^-0.5; kv: (batch,) sequences;
// past: cached positions; mask: (batch, mask_stride), columns [0, past + seq) valid, 0 = padding;
// out: (batch, seq, heads * head_dim). Masked scores get the lowest float (as HF does), so a row with
// every key masked (a pad query) averages uniformly instead of producing NaN.
void attention(const float* q, const SeqKv* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, int64_t head_dim,
               const uint8_t* mask, int64_t mask_stride, float* out);

}  // namespace flexrt::ops
