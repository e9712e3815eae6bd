#include "layer_norm.hpp"

#include "f16.hpp"

#include <cmath>
#include <vector>

namespace flexrt::ops {

void layer_norm(const float* x, int64_t rows, int64_t h, const uint16_t* w, const uint16_t* b, double eps, float* y) {
    std::vector<float> wf(h), bf(h);
    half_to_float(w, wf.data(), h);
    half_to_float(b, bf.data(), h);
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * h;
        float* yr = y + r * h;
        double mean = 0, var = 0;  // double: the oracle should not lose digits on large hidden sizes
        for (int64_t i = 0; i < h; ++i) mean += xr[i];
        mean /= static_cast<double>(h);
        for (int64_t i = 0; i < h; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        var /= static_cast<double>(h);
        const double inv = 1.0 / std::sqrt(var + eps);
        for (int64_t i = 0; i < h; ++i) yr[i] = static_cast<float>((xr[i] - mean) * inv) * wf[i] + bf[i];
    }
}

}  // namespace flexrt::ops
