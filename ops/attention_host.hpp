// Decode attention on host threads over a KV cache kept in host memory: the GPU path's cpu_cache_compute
// (FlexLLMGen's), where moving the cache to the GPU every step would cost more than reading it where it is.
// An fp16 cache is read in place, never widened or copied; a compressed one (policy.compress_cache) is
// widened a head's slice of a row at a time, to the values dequantize_group4 gives.
#pragma once

#include <cstdint>

namespace flexrt::ops {

struct Group4Layout;

// One sequence: its past rows (row r at past_k + r * past_stride; head n at n * head_dim), this step's new
// key and value rows, and its mask row (past + 1 entries, 0 = padding). All fp16 in host memory - or, when
// `packed` is set, the past rows are group4 blocks of that one-row layout (Group4Layout::rows(1, h, ..)),
// past_k / past_v point at bytes and past_stride counts bytes.
struct SeqKvHost {
    const uint16_t* past_k;
    const uint16_t* past_v;
    int64_t past_stride;
    const uint16_t* new_k;
    const uint16_t* new_v;
    const uint8_t* mask;
    const Group4Layout* packed = nullptr;
};

// attention() (attention.hpp) for one new token per sequence, in fp32 with the fp16 inputs widened on the
// fly. q, out: (batch, heads * head_dim) fp16, q pre-scaled. Splits (sequence, head) pairs over `threads`
// threads (0: the hardware's count).
void attention_decode_host(const uint16_t* q, const SeqKvHost* kv, int64_t batch, int64_t past, int64_t heads, int64_t head_dim,
                           uint16_t* out, unsigned threads = 0);

}  // namespace flexrt::ops
