#include "sampling.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace flexrt::ops {

int32_t argmax(const float* logits, int64_t vocab) { return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits); }

int32_t sample(const float* logits, int64_t vocab, double temperature, double u, int64_t top_k, double top_p) {
    const double mx = *std::max_element(logits, logits + vocab);
    if ((top_k > 0 && top_k < vocab) || top_p < 1.0) {
        // The candidates by probability, most likely first (ties: the smaller id), cut by k, then by p.
        std::vector<int32_t> ids(static_cast<size_t>(vocab));
        for (int64_t v = 0; v < vocab; ++v) ids[v] = static_cast<int32_t>(v);
        auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
        const int64_t k = top_k > 0 ? std::min(top_k, vocab) : vocab;
        std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), before);
        ids.resize(static_cast<size_t>(k));
        std::vector<double> p(ids.size());
        double sum = 0;
        for (size_t i = 0; i < ids.size(); ++i) sum += p[i] = std::exp((logits[ids[i]] - mx) / temperature);
        size_t keep = ids.size();
        if (top_p < 1.0) {
            double acc = 0;
            for (keep = 0; keep < ids.size();) {
                acc += p[keep++] / sum;
                if (acc >= top_p) break;
            }
        }
        double kept = 0;
        for (size_t i = 0; i < keep; ++i) kept += p[i];
        const double target = u * kept;
        double acc = 0;
        for (size_t i = 0; i < keep; ++i) {
            acc += p[i];
            if (acc > target) return ids[i];
        }
        return ids[keep - 1];
    }
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
