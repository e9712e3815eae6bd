#include "linear.hpp"

#include "f16.hpp"

#include <cblas.h>

#include <algorithm>
#include <vector>

namespace flexrt::ops {

namespace {
// Weights are widened a block of rows at a time, so scratch stays small even for the (vocab, h) head.
constexpr int64_t kBlockFloats = 4ll << 20;
}  // namespace

int64_t linear_scratch_floats(int64_t in_features) { return std::max(kBlockFloats, in_features); }

void linear(const float* x, int64_t rows, int64_t in, const uint16_t* w, const uint16_t* b, int64_t out, float* y,
            float* scratch, bool relu) {
    const int64_t block = std::max<int64_t>(1, kBlockFloats / in);
    for (int64_t o0 = 0; o0 < out; o0 += block) {
        const int64_t n = std::min(block, out - o0);
        half_to_float(w + o0 * in, scratch, n * in);
        // y[:, o0:o0+n] = x (rows, in) * Wblock^T (in, n)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n),
                    static_cast<int>(in), 1.0f, x, static_cast<int>(in), scratch, static_cast<int>(in), 0.0f, y + o0,
                    static_cast<int>(out));
    }
    if (b) {
        std::vector<float> bf(out);
        half_to_float(b, bf.data(), out);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t o = 0; o < out; ++o) y[r * out + o] += bf[o];
    }
    if (relu)
        for (int64_t i = 0; i < rows * out; ++i) y[i] = std::max(y[i], 0.0f);
}

}  // namespace flexrt::ops
