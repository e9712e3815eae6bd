#include "sampling.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace flexrt::ops {

int32_t argmax(const float* logits, int64_t vocab) {
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
}

int32_t sample(const float* logits, int64_t vocab, double temperature, double u) {
    const double mx = *std::max_element(logits, logits + vocab);
    std::vector<double> p(vocab);
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += p[v] = std::exp((logits[v] - mx) / temperature);
    const double target = u * sum;
    double acc = 0;
    for (int64_t v = 0; v < vocab; ++v) {
        acc += p[v];
        if (acc > target) return static_cast<int32_t>(v);
    }
    return argmax(logits, vocab);  // u * sum rounded up to the total
}

namespace {
uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
}  // namespace

double uniform(uint64_t seed, uint64_t sequence, uint64_t step) {
    const uint64_t x = splitmix64(splitmix64(splitmix64(seed) ^ sequence) ^ step);
    return static_cast<double>(x >> 11) * 0x1.0p-53;
}

}  // namespace flexrt::ops
