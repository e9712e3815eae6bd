#pragma once

#include <cstdint>

namespace flexrt::ops {

// OPT's input embedding: token embedding plus learned positions with OPT's offset of 2.
// ids: (batch, seq) token ids of this step; mask: (batch, mask_stride) with the first `mask_len` columns
// valid (1 = real token, 0 = left padding), covering every position up to and including this step's.
// Position of a token = number of real tokens up to and including it + 1 (pads get 1), as
// FlexLLMGen's cumsum(mask) * mask + 1 and HF's cumsum - 1 + offset 2.
// w_tok: (vocab, h) fp16; w_pos: (max_seq_len + 2, h) fp16; out: (batch, seq, h) fp32.
void embed(const int32_t* ids, int64_t batch, int64_t seq, const uint8_t* mask, int64_t mask_stride, int64_t mask_len,
           const uint16_t* w_tok, int64_t vocab, const uint16_t* w_pos, int64_t n_pos, int64_t h, float* out);

}  // namespace flexrt::ops
