#pragma once

#include <cstdint>

namespace flexrt::ops {

// out[r] = w_tok[ids[r]] for `rows` ids. w_tok: (vocab, dim) fp16; out: (rows, dim) fp32.
// Throws flexrt::Error for an id outside [0, vocab).
void embed_tokens(const int32_t* ids, int64_t rows, const uint16_t* w_tok, int64_t vocab, int64_t dim, float* out);

// Adds OPT's learned positions (offset 2) to x: (batch, seq, h), this step's tokens.
// mask: (batch, mask_stride) with the first `mask_len` columns valid (1 = real token, 0 = left padding),
// covering every position up to and including this step's. Position of a token = number of real tokens up
// to and including it + 1 (pads get 1), as FlexLLMGen's cumsum(mask) * mask + 1 and HF's cumsum - 1 +
// offset 2. w_pos: (n_pos, h) fp16. Throws when a position is beyond n_pos.
void add_positions(float* x, int64_t batch, int64_t seq, const uint8_t* mask, int64_t mask_stride, int64_t mask_len, const uint16_t* w_pos,
                   int64_t n_pos, int64_t h);

}  // namespace flexrt::ops
