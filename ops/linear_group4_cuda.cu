// Fused group4 GEMM (see linear_group4.hpp). One block of 4 warps computes a 64 x 128 tile of y (64 rows
// of x, two groups of output features) over a range of `in`. Per 64-column step, cp.async brings x, the 4-bit
// codes and the (scale, min) pairs into shared memory two steps ahead; then each warp works alone on its 32
// output features (half a group): one reciprocal per column, its codes widened to fp16 (two per instruction:
// a byte permute and a mask make fp16 1024 + code, then sub and FMA in half2), and WMMA on tensor cores
// with fp32 accumulators - one block-wide barrier per step. When the tiles alone do not fill the GPU, `in`
// is split over a thread-block cluster whose blocks add their fp32 tiles through distributed shared memory,
// in a fixed order (deterministic, nothing written to global memory but y).
#include "linear_group4.hpp"

#include "cuda_check.cuh"

#include <cuda_fp16.h>
#include <cooperative_groups.h>
#include <mma.h>

#include <algorithm>

namespace flexrt::ops::cuda {
namespace {
using namespace nvcuda;
namespace cg = cooperative_groups;

constexpr int kBM = 64, kBN = 128, kBK = 64, kStages = 3, kWarps = 4, kThreads = 32 * kWarps;
constexpr int kWarpN = kBN / kWarps;                           // 32 output features per warp
constexpr int kXld = kBK + 8, kWld = kBK + 8, kCld = kBN + 4;  // padded rows: no bank conflicts for WMMA loads

struct Tiles {
    __half x[kStages][kBM][kXld];
    uint8_t codes[kStages][kBN / 2][kBK];  // row pairs: byte = even row's code << 4 | odd row's code
    __half pairs[kStages][2][2][kBK];      // [group of the tile][scale, min][column]
    __half coef[kWarps][2][kBK];           // per warp: [fp16(1 / scale), min] of its group, this step
    __half w[kBN][kWld];                   // the widened weights, (out, in) as stored: WMMA's col-major B
};
constexpr size_t kSmem = std::max(sizeof(Tiles), sizeof(float) * kBM * kCld);

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));  // 0: zero fill
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all_but_newest() { asm volatile("cp.async.wait_group %0;\n" ::"n"(kStages - 2)); }

__device__ __forceinline__ __half2 as_half2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }
__device__ __forceinline__ uint32_t as_u32(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }

struct Args {
    const __half* x;
    int M, K, N;
    const uint8_t* codes;
    const __half* pairs;
    int ng;               // groups along `out`
    int tiles_per_split;  // 64-column steps of `in` per block
    uint32_t code_base;   // 1024 + 8 * symmetric, twice, as half2 bits: fp16 (1024 + code) - base = code (- 8)
    const __half* bias;
    __half* y;
    bool relu;
};

__global__ void __launch_bounds__(kThreads) linear_group4_kernel(Args a) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    Tiles& t = *reinterpret_cast<Tiles*>(smem_raw);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int n0 = blockIdx.x * kBN, m0 = blockIdx.y * kBM;
    const int kt0 = blockIdx.z * a.tiles_per_split, kt1 = min(a.K / kBK, kt0 + a.tiles_per_split);
    const int code_rows = a.ng * 32;  // row pairs in the codes, the zero padding of the last group included

    // Each thread's cp.async sources for step 0 of this block, advanced by 64 columns a step (the addresses
    // are computed once, not per step).
    constexpr int kXChunks = kBM * kBK / 8 / kThreads, kCodeChunks = kBN / 2 * kBK / 16 / kThreads;
    const __half* xs[kXChunks];
    bool x_ok[kXChunks];
#pragma unroll
    for (int i = 0; i < kXChunks; ++i) {  // x: 64 rows of 128 bytes
        const int c = tid + i * kThreads, r = c / (kBK / 8), col = (c % (kBK / 8)) * 8;
        x_ok[i] = m0 + r < a.M;
        xs[i] = a.x + (x_ok[i] ? static_cast<size_t>(m0 + r) * a.K + col : 0);
    }
    const uint8_t* cs[kCodeChunks];
    bool c_ok[kCodeChunks];
#pragma unroll
    for (int i = 0; i < kCodeChunks; ++i) {  // codes: 64 row pairs of 64 bytes
        const int c = tid + i * kThreads, gp = n0 / 2 + c / 4, col = (c % 4) * 16;
        c_ok[i] = gp < code_rows;
        cs[i] = a.codes + (c_ok[i] ? static_cast<size_t>(gp) * a.K + col : 0);
    }
    const int p_gi = (tid % 32) / 16, p_which = (tid / 8) % 2, p_col = (tid % 8) * 8;  // pairs: 2 groups x (scale, min)
    const bool p_ok = tid < 32 && n0 / 64 + p_gi < a.ng;
    const __half* ps = a.pairs + (p_ok ? (static_cast<size_t>(n0 / 64 + p_gi) * 2 + p_which) * a.K + p_col : 0);

    auto load = [&](int kt, int s) {
        const int k0 = kt * kBK;
#pragma unroll
        for (int i = 0; i < kXChunks; ++i) {
            const int c = tid + i * kThreads;
            cp_async16(&t.x[s][c / (kBK / 8)][(c % (kBK / 8)) * 8], xs[i] + (x_ok[i] ? k0 : 0), x_ok[i]);
        }
#pragma unroll
        for (int i = 0; i < kCodeChunks; ++i) {
            const int c = tid + i * kThreads;
            cp_async16(&t.codes[s][c / 4][(c % 4) * 16], cs[i] + (c_ok[i] ? k0 : 0), c_ok[i]);
        }
        if (tid < 32) cp_async16(&t.pairs[s][p_gi][p_which][p_col], ps + (p_ok ? k0 : 0), p_ok);
    };

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kBM / 16][kWarpN / 16];
    for (auto& row : acc)
        for (auto& f : row) wmma::fill_fragment(f, 0.0f);
    const int gi = warp * kWarpN / 64;  // this warp's group within the tile

    int fetch = kt0;
    for (int s = 0; s < kStages - 1; ++s, ++fetch) {
        if (fetch < kt1) load(fetch, s);
        cp_async_commit();
    }
    const __half2 base = as_half2(a.code_base);
    for (int kt = kt0; kt < kt1; ++kt) {
        const int s = (kt - kt0) % kStages;
        cp_async_wait_all_but_newest();
        __syncthreads();  // step kt has landed for every thread; every warp is done with step kt - 1
        if (fetch < kt1) load(fetch, (fetch - kt0) % kStages);
        cp_async_commit();
        ++fetch;
#pragma unroll
        for (int c = lane; c < kBK; c += 32) {  // one reciprocal per column of the group, not a division per element
            const float scale = __half2float(t.pairs[s][gi][0][c]);
            t.coef[warp][0][c] = __float2half_rn(scale > 0.0f ? __frcp_rn(scale) : 0.0f);  // 0: a zero-filled group
            t.coef[warp][1][c] = t.pairs[s][gi][1][c];
        }
        __syncwarp();
#pragma unroll
        for (int c = lane; c < kWarpN / 2 * kBK / 16; c += 32) {  // widen this warp's 16 row pairs, 16 columns a lane
            const int p = warp * kWarpN / 2 + c / 4, col = (c % 4) * 16;
            const uint4 raw = *reinterpret_cast<const uint4*>(&t.codes[s][p][col]);
            const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
            uint32_t even[8], odd[8];
#pragma unroll
            for (int q = 0; q < 4; ++q)
#pragma unroll
                for (int h = 0; h < 2; ++h) {  // bytes 2h and 2h + 1 of the word: columns cc and cc + 1
                    const uint32_t spread = __byte_perm(words[q], 0, h ? 0x4342 : 0x4140);  // [byte, 0, byte, 0]
                    const uint32_t lo = (spread & 0x000f000fu) | 0x64006400u;
                    const uint32_t hi = ((spread >> 4) & 0x000f000fu) | 0x64006400u;
                    const int cc = col + 4 * q + 2 * h;
                    const __half2 inv = *reinterpret_cast<const __half2*>(&t.coef[warp][0][cc]);
                    const __half2 mn = *reinterpret_cast<const __half2*>(&t.coef[warp][1][cc]);
                    even[2 * q + h] = as_u32(__hfma2(__hsub2(as_half2(hi), base), inv, mn));
                    odd[2 * q + h] = as_u32(__hfma2(__hsub2(as_half2(lo), base), inv, mn));
                }
            auto* we = reinterpret_cast<uint4*>(&t.w[2 * p][col]);
            auto* wo = reinterpret_cast<uint4*>(&t.w[2 * p + 1][col]);
            we[0] = make_uint4(even[0], even[1], even[2], even[3]);
            we[1] = make_uint4(even[4], even[5], even[6], even[7]);
            wo[0] = make_uint4(odd[0], odd[1], odd[2], odd[3]);
            wo[1] = make_uint4(odd[4], odd[5], odd[6], odd[7]);
        }
        __syncwarp();
#pragma unroll
        for (int kk = 0; kk < kBK; kk += 16) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[kWarpN / 16];
#pragma unroll
            for (int j = 0; j < kWarpN / 16; ++j) wmma::load_matrix_sync(fb[j], &t.w[warp * kWarpN + j * 16][kk], kWld);
#pragma unroll
            for (int i = 0; i < kBM / 16; ++i) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
                wmma::load_matrix_sync(fa, &t.x[s][i * 16][kk], kXld);
#pragma unroll
                for (int j = 0; j < kWarpN / 16; ++j) wmma::mma_sync(acc[i][j], fa, fb[j], acc[i][j]);
            }
        }
    }

    asm volatile("cp.async.wait_all;\n" ::);
    __syncthreads();  // the tiles are dead: the shared memory now holds the fp32 result tile
    auto* C = reinterpret_cast<float*>(smem_raw);
#pragma unroll
    for (int i = 0; i < kBM / 16; ++i)
#pragma unroll
        for (int j = 0; j < kWarpN / 16; ++j)
            wmma::store_matrix_sync(&C[(i * 16) * kCld + warp * kWarpN + j * 16], acc[i][j], kCld, wmma::mem_row_major);
    // The blocks of one tile (the splits of `in`) form a cluster: each sums a slice of the tile's rows over
    // every block's shared memory, in block order (deterministic), and writes y. No partial sums in global memory.
    cg::cluster_group cluster = cg::this_cluster();
    const int splits = static_cast<int>(cluster.num_blocks()), rank = static_cast<int>(cluster.block_rank());
    cluster.sync();
    const float* parts[8];
    for (int r = 0; r < splits; ++r) parts[r] = cluster.map_shared_rank(C, r);
    const int r0 = kBM * rank / splits, r1 = kBM * (rank + 1) / splits;
    for (int e = r0 * kBN + tid; e < r1 * kBN; e += kThreads) {
        const int r = e / kBN, c = e % kBN, m = m0 + r, n = n0 + c;
        if (m >= a.M || n >= a.N) continue;
        float v = 0.0f;
        for (int q = 0; q < splits; ++q) v += parts[q][r * kCld + c];
        if (a.bias) v += __half2float(a.bias[n]);
        a.y[static_cast<size_t>(m) * a.N + n] = __float2half_rn(a.relu ? fmaxf(v, 0.0f) : v);
    }
    cluster.sync();  // no block leaves while another still reads its shared memory
}

// The SM count, once the kernel may use more than 48 KiB of shared memory (both once per process).
int prepare_launches() {
    static const int n = [] {
        int dev = 0, count = 0;
        FLEXRT_CUDA_CHECK(cudaGetDevice(&dev));
        FLEXRT_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
        FLEXRT_CUDA_CHECK(cudaFuncSetAttribute(linear_group4_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)));
        return count;
    }();
    return n;
}

}  // namespace

void linear_group4(const uint16_t* x, int64_t rows, const uint8_t* packed, const Group4Layout& L, const uint16_t* b,
                   uint16_t* y, bool relu, void* stream) {
    if (!fusable_group4(L))
        throw Error(FLEXRT_STATUS_INVALID_ARGUMENT, "linear_group4: layout not fusable (outer " + std::to_string(L.outer) +
                                                        ", group_size " + std::to_string(L.group_size) + ", in " +
                                                        std::to_string(L.inner) + ")");
    if (rows == 0 || L.dim == 0) return;
    const int sms = prepare_launches();
    const int tiles = static_cast<int>(L.inner / kBK);
    const dim3 grid(static_cast<unsigned>((L.dim + kBN - 1) / kBN), static_cast<unsigned>((rows + kBM - 1) / kBM));
    const int blocks = static_cast<int>(grid.x * grid.y), wave = 3 * sms;  // 3 blocks fit an SM
    // Split `in` over a cluster of up to 8 blocks when the tiles alone leave SMs idle: the split that
    // minimises the steps of the busiest block slot (whole waves), the smaller on a tie (less to reduce).
    int splits = 1;
    int64_t best = INT64_MAX;
    for (int s = 1; s <= std::min(8, std::max(1, tiles / 4)); ++s) {
        const int64_t per = (tiles + s - 1) / s, cost = (static_cast<int64_t>(blocks) * s + wave - 1) / wave * per;
        if (cost < best) best = cost, splits = s;
    }
    const int per_split = (tiles + splits - 1) / splits;
    const int16_t base = static_cast<int16_t>(L.symmetric ? 0x6408 : 0x6400);  // fp16 1032 or 1024
    Args a{reinterpret_cast<const __half*>(x), static_cast<int>(rows), static_cast<int>(L.inner), static_cast<int>(L.dim), packed,
           reinterpret_cast<const __half*>(packed + L.code_bytes()), static_cast<int>(L.groups()), per_split,
           static_cast<uint32_t>(static_cast<uint16_t>(base)) * 0x10001u, reinterpret_cast<const __half*>(b),
           reinterpret_cast<__half*>(y), relu};
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(grid.x, grid.y, static_cast<unsigned>(splits));
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = kSmem;
    cfg.stream = static_cast<cudaStream_t>(stream);
    cudaLaunchAttribute cluster{};
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = 1, cluster.val.clusterDim.y = 1, cluster.val.clusterDim.z = static_cast<unsigned>(splits);
    cfg.attrs = &cluster;
    cfg.numAttrs = 1;
    FLEXRT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, linear_group4_kernel, a));
}

}  // namespace flexrt::ops::cuda
