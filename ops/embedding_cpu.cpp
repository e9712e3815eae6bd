#include "embedding.hpp"

#include "f16.hpp"

#include <flexrt/status.hpp>

#include <string>
#include <vector>

namespace flexrt::ops {

void embed(const int32_t* ids, int64_t batch, int64_t seq, const uint8_t* mask, int64_t mask_stride, int64_t mask_len,
           const uint16_t* w_tok, int64_t vocab, const uint16_t* w_pos, int64_t n_pos, int64_t h, float* out) {
    std::vector<float> tok(h), pos(h);
    for (int64_t b = 0; b < batch; ++b) {
        const uint8_t* m = mask + b * mask_stride;
        int64_t real = 0;  // real tokens before this step's first position
        for (int64_t c = 0; c < mask_len - seq; ++c) real += m[c];
        for (int64_t s = 0; s < seq; ++s) {
            const int64_t col = mask_len - seq + s;
            real += m[col];
            const int64_t p = m[col] ? real + 1 : 1;
            const int32_t id = ids[b * seq + s];
            if (id < 0 || id >= vocab)
                FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                             "token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab));
            if (p >= n_pos)
                FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "position " + std::to_string(p - 2) +
                                                                 " is beyond the model's " + std::to_string(n_pos - 2) +
                                                                 " learned positions");
            half_to_float(w_tok + id * h, tok.data(), h);
            half_to_float(w_pos + p * h, pos.data(), h);
            float* o = out + (b * seq + s) * h;
            for (int64_t i = 0; i < h; ++i) o[i] = tok[i] + pos[i];
        }
    }
}

}  // namespace flexrt::ops
