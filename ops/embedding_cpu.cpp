#include "embedding.hpp"

#include "f16.hpp"

#include <flexrt/status.hpp>

#include <string>
#include <vector>

namespace flexrt::ops {

void embed_tokens(const int32_t* ids, int64_t rows, const uint16_t* w_tok, int64_t vocab, int64_t dim, float* out) {
    for (int64_t r = 0; r < rows; ++r) {
        if (ids[r] < 0 || ids[r] >= vocab)
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                         "token id " + std::to_string(ids[r]) + " is outside the vocabulary of " + std::to_string(vocab));
        half_to_float(w_tok + ids[r] * dim, out + r * dim, dim);
    }
}

void add_positions(float* x, int64_t batch, int64_t seq, const uint8_t* mask, int64_t mask_stride, int64_t mask_len, const uint16_t* w_pos,
                   int64_t n_pos, int64_t h) {
    std::vector<float> pos(h);
    for (int64_t b = 0; b < batch; ++b) {
        const uint8_t* m = mask + b * mask_stride;
        int64_t real = 0;  // real tokens before this step's first position
        for (int64_t c = 0; c < mask_len - seq; ++c) real += m[c];
        for (int64_t s = 0; s < seq; ++s) {
            const int64_t col = mask_len - seq + s;
            real += m[col];
            const int64_t p = m[col] ? real + 1 : 1;
            if (p >= n_pos)
                FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "position " + std::to_string(p - 2) + " is beyond the model's " +
                                                                 std::to_string(n_pos - 2) + " learned positions");
            half_to_float(w_pos + p * h, pos.data(), h);
            float* o = x + (b * seq + s) * h;
            for (int64_t i = 0; i < h; ++i) o[i] += pos[i];
        }
    }
}

}  // namespace flexrt::ops
