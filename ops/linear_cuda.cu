#include "ops_cuda.hpp"

#include "cuda_check.cuh"

#include <algorithm>
#include <cfloat>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

namespace flexrt::ops::cuda {
namespace {

// One cuBLASLt handle and workspace per process, and the chosen algorithm per shape: the heuristic query
// costs more than a small GEMM, so it runs once per (rows, in, out, epilogue).
struct Lt {
    cublasLtHandle_t handle{};
    void* workspace = nullptr;
    static constexpr size_t kWorkspace = 32u << 20;
    struct Plan {
        cublasLtMatmulDesc_t desc{};
        cublasLtMatrixLayout_t a{}, b{}, c{};
        cublasLtMatmulAlgo_t algo{};
    };
    std::map<std::tuple<int64_t, int64_t, int64_t, int>, Plan> plans;
    std::mutex m;
    Lt() {
        FLEXRT_CUBLAS_CHECK(cublasLtCreate(&handle));
        FLEXRT_CUDA_CHECK(cudaMalloc(&workspace, kWorkspace));
    }
};

Lt& lt() {
    static Lt* instance = new Lt();  // lives for the process: handles must outlive every stream that used them
    return *instance;
}

// Decode-sized GEMMs (a few rows, every weight byte read once) are memory-bound, and the heuristic's first
// choice for them reads the weights at about half the device's bandwidth at some shapes (W1's 4096 x 4096
// projections at 128 rows: 47 us each against a 22 us floor). For them the first call times the heuristic's
// candidates on the call's own operands and keeps the fastest: a few milliseconds once per shape. Larger GEMMs
// keep the first choice: timing them would cost more than it could win, inside the run being measured.
constexpr int kCandidates = 16;  // more candidates, more chances of a fast one that rounds as the first
constexpr int64_t kTunedRows = 512;

void run(Lt& L, Lt::Plan& p, const uint16_t* x, const uint16_t* w, const uint16_t* b, uint16_t* y, const cublasLtMatmulAlgo_t& algo,
         cudaStream_t s, const uint16_t* residual = nullptr) {
    if (b) FLEXRT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
    const float alpha = 1.0f, beta = residual ? 1.0f : 0.0f;
    const void* c = residual ? static_cast<const void*>(residual) : y;
    FLEXRT_CUBLAS_CHECK(
        cublasLtMatmul(L.handle, p.desc, &alpha, w, p.a, x, p.b, &beta, c, p.c, y, p.c, &algo, L.workspace, Lt::kWorkspace, s));
}

// The fastest of the heuristic's candidates among those that split the sum over `in` as the first one does and
// whose output equals the first one's bit for bit on this call's data. A candidate with another reduction order (split-K, stream-K, sliced
// K) gives other roundings: chosen by timing alone, the tokens of a run would depend on which won the race that day, where the same prompts
// and seed must give the same tokens every run. The first candidate is the heuristic's, the same on every run for a shape on a GPU and
// cuBLAS version. How an algorithm splits the sum over `in`: its split-K count and reduction scheme.
std::pair<uint32_t, uint32_t> reduction(const cublasLtMatmulAlgo_t& algo) {
    uint32_t splits = 1, scheme = 0;
    size_t written = 0;
    cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof splits, &written);
    cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof scheme, &written);
    return {splits, scheme};
}

cublasLtMatmulAlgo_t fastest(Lt& L, Lt::Plan& p, const cublasLtMatmulHeuristicResult_t* results, int found, const uint16_t* x, int64_t rows,
                             int64_t in, int64_t out, const uint16_t* w, const uint16_t* b, uint16_t* y, cudaStream_t s) {
    cudaEvent_t start{}, stop{};
    FLEXRT_CUDA_CHECK(cudaEventCreate(&start));
    FLEXRT_CUDA_CHECK(cudaEventCreate(&stop));
    struct Events {
        cudaEvent_t a, b;
        ~Events() { cudaEventDestroy(a), cudaEventDestroy(b); }
    } owned{start, stop};
    cublasLtMatmulAlgo_t best = results[0].algo;
    float best_ms = FLT_MAX, any_ms = FLT_MAX;
    int equal = 0;
    const size_t bytes = static_cast<size_t>(rows * out) * sizeof(uint16_t);
    std::vector<uint16_t> reference(static_cast<size_t>(rows * out)), got(reference.size());
    run(L, p, x, w, b, y, results[0].algo, s);
    FLEXRT_CUDA_CHECK(cudaMemcpyAsync(reference.data(), y, bytes, cudaMemcpyDeviceToHost, s));
    FLEXRT_CUDA_CHECK(cudaStreamSynchronize(s));
    for (int c = 0; c < found; ++c) {
        if (results[c].state != CUBLAS_STATUS_SUCCESS) continue;
        run(L, p, x, w, b, y, results[c].algo, s);  // warm, and its output
        FLEXRT_CUDA_CHECK(cudaMemcpyAsync(got.data(), y, bytes, cudaMemcpyDeviceToHost, s));
        FLEXRT_CUDA_CHECK(cudaStreamSynchronize(s));
        // Else it rounds differently: another split of the sum over `in`, or other bits on this call's data.
        const bool same = reduction(results[c].algo) == reduction(results[0].algo) && std::memcmp(got.data(), reference.data(), bytes) == 0;
        FLEXRT_CUDA_CHECK(cudaEventRecord(start, s));
        for (int r = 0; r < 3; ++r) run(L, p, x, w, b, y, results[c].algo, s);
        FLEXRT_CUDA_CHECK(cudaEventRecord(stop, s));
        FLEXRT_CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        FLEXRT_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        if (same && ms < best_ms) best = results[c].algo, best_ms = ms;
        any_ms = std::min(any_ms, ms), equal += same;
    }
    if (std::getenv("FLEXRT_PROFILE_OPS"))  // what choosing among the equal ones costs
        std::fprintf(
            stderr,
            "flexrt: GEMM %lldx%lldx%lld: %d of %d candidates round as the heuristic's; the fastest of them %.1f us, of all %.1f us\n",
            static_cast<long long>(rows), static_cast<long long>(in), static_cast<long long>(out), equal, found, best_ms / 3 * 1000,
            any_ms / 3 * 1000);
    return best;
}

}  // namespace

void linear(const uint16_t* x, int64_t rows, int64_t in, const uint16_t* w, const uint16_t* b, int64_t out, uint16_t* y, bool relu,
            void* stream, const uint16_t* residual) {
    FLEXRT_ASSERT(!residual || (residual != y && !relu));  // the epilogue would apply ReLU after the sum
    if (rows == 0) return;
    Lt& L = lt();
    // Row-major Y (rows, out) is column-major Y^T (out, rows) = W (out, in) * X^T (in, rows): A is the stored
    // W read transposed, B the stored X as it is.
    const cublasLtEpilogue_t epi =
        b ? (relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS) : (relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
    std::lock_guard lock(L.m);
    auto key = std::make_tuple(rows, in, out, static_cast<int>(epi));
    auto it = L.plans.find(key);
    if (it == L.plans.end()) {
        Lt::Plan p;
        FLEXRT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        FLEXRT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
        FLEXRT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
        FLEXRT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        if (b) {
            const cudaDataType_t bt = CUDA_R_16F;
            FLEXRT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
        }
        FLEXRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16F, in, out, in));     // stored W: (in x out) col-major
        FLEXRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16F, in, rows, in));    // stored X: (in x rows)
        FLEXRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_16F, out, rows, out));  // Y^T: (out x rows)
        cublasLtMatmulPreference_t pref{};
        FLEXRT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        size_t ws = Lt::kWorkspace;
        FLEXRT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
        cublasLtMatmulHeuristicResult_t results[kCandidates]{};
        int found = 0;
        FLEXRT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(L.handle, p.desc, p.a, p.b, p.c, p.c, pref, kCandidates, results, &found));
        cublasLtMatmulPreferenceDestroy(pref);
        if (found == 0)
            throw Error(FLEXRT_STATUS_UNSUPPORTED, "cuBLASLt has no algorithm for a " + std::to_string(rows) + "x" + std::to_string(in) +
                                                       "x" + std::to_string(out) + " fp16 GEMM");
        p.algo = results[0].algo;
        if (rows <= kTunedRows && found > 1)
            p.algo = fastest(L, p, results, found, x, rows, in, out, w, b, y, static_cast<cudaStream_t>(stream));
        it = L.plans.emplace(key, p).first;
    }
    run(L, it->second, x, w, b, y, it->second.algo, static_cast<cudaStream_t>(stream), residual);
}

}  // namespace flexrt::ops::cuda
