// The GPU compute device: fp16 activations, the CUDA variants of the ops, all on one stream.
#include "compute.hpp"

#include "cuda_check.cuh"
#include "f16.hpp"
#include "ops_cuda.hpp"

#include <cuda_fp16.h>

#include <vector>

namespace flexrt::ops {
namespace {

__global__ void add_kernel(__half* y, const __half* x, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2half(__half2float(y[i]) + __half2float(x[i]));
}

__global__ void scale_kernel(__half* x, int64_t n, float s) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = __float2half(__half2float(x[i]) * s);
}

unsigned blocks(int64_t n) { return static_cast<unsigned>((n + 255) / 256); }
const uint16_t* h(const void* p) { return static_cast<const uint16_t*>(p); }
uint16_t* h(void* p) { return static_cast<uint16_t*>(p); }

class CudaCompute final : public Compute {
public:
    CudaCompute() { FLEXRT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
    ~CudaCompute() override {
        cudaStreamSynchronize(stream_);
        cudaFree(kv_dev_);
        cudaStreamDestroy(stream_);
    }
    const char* name() const override { return "cuda"; }
    size_t act_bytes() const override { return 2; }
    void layer_norm(const void* x, int64_t rows, int64_t hd, const uint16_t* w, const uint16_t* b, double eps, void* y) override {
        cuda::layer_norm(h(x), rows, hd, w, b, eps, h(y), stream_);
    }
    void linear(const void* x, int64_t rows, int64_t in, const uint16_t* w, const uint16_t* b, int64_t out, void* y,
                bool relu) override {
        cuda::linear(h(x), rows, in, w, b, out, h(y), relu, stream_);
    }
    void embed_tokens(const int32_t* ids, int64_t rows, const uint16_t* w, int64_t vocab, int64_t dim, void* out) override {
        cuda::embed_tokens(ids, rows, w, vocab, dim, h(out), stream_);
    }
    void add_positions(void* x, int64_t batch, int64_t seq, const uint8_t* mask, int64_t stride, int64_t len, const uint16_t* w_pos,
                       int64_t n_pos, int64_t hd) override {
        cuda::add_positions(h(x), batch, seq, mask, stride, len, w_pos, n_pos, hd, stream_);
    }
    void attention(const void* q, const KvView* kv, int64_t batch, int64_t seq, int64_t past, int64_t heads, int64_t hd,
                   const uint8_t* mask, int64_t stride, void* out) override {
        std::vector<cuda::SeqKvHalf> views(static_cast<size_t>(batch));
        for (int64_t b = 0; b < batch; ++b)
            views[b] = {h(kv[b].past_k), h(kv[b].past_v), kv[b].past_stride, h(kv[b].new_k), h(kv[b].new_v), kv[b].new_stride};
        const size_t bytes = views.size() * sizeof(cuda::SeqKvHalf);
        if (bytes > kv_cap_) {
            FLEXRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
            cudaFree(kv_dev_);
            FLEXRT_CUDA_CHECK(cudaMalloc(&kv_dev_, bytes));
            kv_cap_ = bytes;
        }
        // From pageable memory: the call returns once the bytes have left `views`.
        FLEXRT_CUDA_CHECK(cudaMemcpyAsync(kv_dev_, views.data(), bytes, cudaMemcpyHostToDevice, stream_));
        cuda::attention(h(q), static_cast<const cuda::SeqKvHalf*>(kv_dev_), batch, seq, past, heads, hd, mask, stride, h(out), stream_);
    }
    void add(void* y, const void* x, int64_t n) override {
        if (n == 0) return;
        add_kernel<<<blocks(n), 256, 0, stream_>>>(static_cast<__half*>(y), static_cast<const __half*>(x), n);
        FLEXRT_CUDA_LAUNCH_CHECK();
    }
    void scale(void* x, int64_t n, float s) override {
        if (n == 0) return;
        scale_kernel<<<blocks(n), 256, 0, stream_>>>(static_cast<__half*>(x), n, s);
        FLEXRT_CUDA_LAUNCH_CHECK();
    }
    void copy_rows(void* dst, int64_t dst_stride, const void* src, int64_t src_stride, int64_t rows, int64_t width) override {
        if (rows == 0) return;
        FLEXRT_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_stride * 2, src, src_stride * 2, width * 2, rows, cudaMemcpyDeviceToDevice, stream_));
    }
    void upload(void* dst, const void* src, size_t bytes) override {
        FLEXRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
        FLEXRT_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the caller may reuse `src` at once
    }
    void to_host_floats(float* dst, const void* src, int64_t n) override {
        staging_.resize(static_cast<size_t>(n));
        FLEXRT_CUDA_CHECK(cudaMemcpyAsync(staging_.data(), src, n * 2, cudaMemcpyDeviceToHost, stream_));
        FLEXRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
        half_to_float(staging_.data(), dst, n);
    }
    void synchronize() override { FLEXRT_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
    void when_done(void (*fn)(void*), void* arg) override { FLEXRT_CUDA_CHECK(cudaLaunchHostFunc(stream_, fn, arg)); }

private:
    cudaStream_t stream_{};
    void* kv_dev_ = nullptr;
    size_t kv_cap_ = 0;
    std::vector<uint16_t> staging_;
};

}  // namespace

std::unique_ptr<Compute> make_cuda_compute() { return std::make_unique<CudaCompute>(); }

}  // namespace flexrt::ops
