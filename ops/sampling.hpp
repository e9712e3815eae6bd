#pragma once

#include <cstdint>

namespace flexrt::ops {

// Index of the largest logit (the first one on ties). logits: (vocab,) fp32.
int32_t argmax(const float* logits, int64_t vocab);

// Draws from softmax(logits / temperature) with the uniform number u in [0, 1). The caller derives u from
// (seed, sequence, step), so a sequence's tokens do not depend on how sequences are batched.
// top_k > 0 keeps the k most likely tokens; top_p < 1 keeps the most likely ones whose probabilities add up
// to top_p (at least one); what is kept is renormalised. top_k = 0, top_p = 1: the whole vocabulary.
int32_t sample(const float* logits, int64_t vocab, double temperature, double u, int64_t top_k = 0, double top_p = 1.0);

// Counter-based uniform in [0, 1) from (seed, sequence, step): splitmix64 of the three.
double uniform(uint64_t seed, uint64_t sequence, uint64_t step);

}  // namespace flexrt::ops
