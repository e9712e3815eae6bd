#pragma once

#include <cstdint>

namespace flexrt::ops {

// Index of the largest logit (the first one on ties). logits: (vocab,) fp32.
int32_t argmax(const float* logits, int64_t vocab);

// Draws from softmax(logits / temperature) with the uniform number u in [0, 1). The caller derives u from
// (seed, sequence, step), so a sequence's tokens do not depend on how sequences are batched.
int32_t sample(const float* logits, int64_t vocab, double temperature, double u);

// Counter-based uniform in [0, 1) from (seed, sequence, step): splitmix64 of the three.
double uniform(uint64_t seed, uint64_t sequence, uint64_t step);

}  // namespace flexrt::ops
