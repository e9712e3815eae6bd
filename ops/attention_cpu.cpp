#include "attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace flexrt::ops {

void attention(const float* q, const SeqKv* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, int64_t head_dim,
               const uint8_t* mask, int64_t mask_stride, float* out) {
    const int64_t h = heads * head_dim, keys = past + seq;
    const float lowest = std::numeric_limits<float>::lowest();
    std::vector<float> score(keys);
    std::vector<double> acc(head_dim);
    for (int64_t b = 0; b < batch; ++b) {
        const uint8_t* m = mask + b * mask_stride;
        for (int64_t n = 0; n < heads; ++n) {
            for (int64_t s = 0; s < seq; ++s) {
                const float* qv = q + (b * seq + s) * h + n * head_dim;
                auto key = [&](int64_t t) {
                    return t < past ? kv[b].past_k + t * kv[b].past_stride + n * head_dim
                                    : kv[b].new_k + (t - past) * kv[b].new_stride + n * head_dim;
                };
                auto val = [&](int64_t t) {
                    return t < past ? kv[b].past_v + t * kv[b].past_stride + n * head_dim
                                    : kv[b].new_v + (t - past) * kv[b].new_stride + n * head_dim;
                };
                float mx = lowest;
                for (int64_t t = 0; t < keys; ++t) {
                    if (!m[t] || t > past + s) {
                        score[t] = lowest;
                        continue;
                    }
                    const float* kr = key(t);
                    float d = 0;
                    for (int64_t e = 0; e < head_dim; ++e) d += qv[e] * kr[e];
                    score[t] = d;
                    mx = std::max(mx, d);
                }
                double sum = 0;
                std::fill(acc.begin(), acc.end(), 0.0);
                for (int64_t t = 0; t < keys; ++t) {
                    // lowest - lowest = 0 for an all-masked row: uniform weights, finite output
                    const double p = std::exp(static_cast<double>(score[t]) - static_cast<double>(mx));
                    sum += p;
                    if (p == 0) continue;
                    const float* vr = val(t);
                    for (int64_t e = 0; e < head_dim; ++e) acc[e] += p * vr[e];
                }
                float* o = out + (b * seq + s) * h + n * head_dim;
                for (int64_t e = 0; e < head_dim; ++e) o[e] = static_cast<float>(acc[e] / sum);
            }
        }
    }
}

}  // namespace flexrt::ops
