// Fused group4 GEMM (see linear_group4.hpp). One block of 4 warps computes a tile of y of up to 64 rows of x (8 NT) and 64 WF
// output features (each warp 16 WF features) over a range of `in`, in steps of 64 columns that cp.async brings into shared
// memory S - 1 steps ahead: x, the 4-bit codes and the (scale, min) pairs.
//
// The product is computed transposed, y^T = W x^T, on mma.sync m16n8k16: the weights are the A operand (16 output features x 16
// columns), x^T the B operand (16 columns x 8 rows of x). Each thread loads 16 code bytes straight into registers and widens them
// there into its A fragments (two codes per instruction: a byte permute and a mask make fp16 1024 + code, then a sub and an FMA
// in half2) - the weights never pass through shared memory in fp16, and the fragments are written where the tensor cores read
// them (no moves). This works because a tensor-core product sums over k in any order: the 16 columns of a 64-column step that a
// lane holds are the contiguous columns [16 t, 16 t + 16) (t = lane % 4) of x and of the codes alike, so both are read with
// 16-byte loads and need no reordering, in memory or in the stored format. A code byte holds two output features (rows 2p and 2p
// + 1 of W): they are rows g and g + 8 of an m16 tile.
//
// The shape of a block follows the rows (measured on the H100, OPT-30B's decode GEMMs): up to 32 rows a warp takes 32 features
// (two m16 tiles) and an SM holds 4 blocks; at 64 rows the widening of each A fragment is shared by 8 n8 tiles, and a warp takes
// a whole group, 64 features (4 m16 tiles: 128 fp32 accumulators, 2 blocks an SM), which halves the loads of x per weight:
// 1.56x fp16 cuBLAS for a 30B layer at 64 rows, against 1.31x with 32 features a warp.
//
// When the tiles alone do not fill the GPU, `in` is split over a thread-block cluster whose blocks add their fp32 tiles through
// distributed shared memory, in a fixed order (deterministic, nothing written to global memory but y).
#include "linear_group4.hpp"
#include "linear_group4_split.hpp"

#include "cuda_check.cuh"

#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <atomic>

namespace flexrt::ops::cuda {
namespace {
namespace cg = cooperative_groups;

constexpr int kBK = 64, kWarps = 4, kThreads = 32 * kWarps;
constexpr int kXld = kBK + 8;  // x rows padded to 144 bytes: a quarter warp's 16-byte loads hit distinct banks

// A block's shape: NT n8 tiles of rows of x, WF m16 tiles of features a warp (2: 32 features, half a group; 4: a group), S stages
// of shared memory, MinBlocks blocks an SM (the register budget: 65536 / (128 MinBlocks) a thread).
template <int NT_, int WF_, int S_, int MinBlocks_>
struct Shape {
    static constexpr int NT = NT_, WF = WF_, S = S_, MinBlocks = MinBlocks_;
    static constexpr int kBM = 8 * NT, kWarpN = 16 * WF, kBN = kWarps * kWarpN, kCld = kBN + 4;
};
using Rows8 = Shape<1, 2, 3, 4>;
using Rows16 = Shape<2, 2, 3, 4>;
using Rows32 = Shape<4, 2, 3, 4>;
using Rows64 = Shape<8, 4, 4, 2>;

template <class Sh>
struct Tiles {
    __half x[Sh::S][Sh::kBM][kXld];
    uint8_t codes[Sh::S][Sh::kBN / 2][kBK];     // row pairs: byte = even row's code << 4 | odd row's code
    __half pairs[Sh::S][Sh::kBN / 64][2][kBK];  // [group of the tile][scale, min][column]
    __half inv[kWarps][kBK];                    // per warp: fp16(1 / scale) of its group, this step
};
template <class Sh>
constexpr size_t smem_bytes() {
    return std::max(sizeof(Tiles<Sh>), sizeof(float) * Sh::kBM * Sh::kCld);
}

__device__ __forceinline__ unsigned smem_address(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }
// Copies `size` (16, or 0 to zero-fill) bytes of gmem to smem, asynchronously.
__device__ __forceinline__ void cp_async16(unsigned smem, const void* gmem, unsigned size) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(size));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kStages>  // until the oldest of the steps in flight has landed
__device__ __forceinline__ void cp_async_wait_stage() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kStages - 2));
}

__device__ __forceinline__ __half2 as_half2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }
__device__ __forceinline__ uint32_t as_u32(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }
// (a & mask) | bits in one instruction (the compiler emits an AND and an OR for the C++ expression).
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t mask, uint32_t bits) {
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(d) : "r"(a), "r"(mask), "r"(bits));
    return d;
}

// d += a * b, fp16 inputs, fp32 accumulators (PTX mma.sync m16n8k16, A row-major, B column-major).
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

struct Args {
    const __half* x;
    int M, K, N;
    const uint8_t* codes;
    const __half* pairs;
    int ng;                 // groups along `out`
    int tiles_per_split;    // 64-column steps of `in` per block
    uint32_t code_base;     // 1024 + 8 * symmetric, twice, as half2 bits: fp16 (1024 + code) - base = code (- 8)
    uint32_t code_base_hi;  // the same for 64 + code: 64 + 8 * symmetric
    const __half* bias;
    __half* y;
    bool relu;
};

template <class Sh>
__global__ void __launch_bounds__(kThreads, Sh::MinBlocks) linear_group4_kernel(Args a) {
    constexpr int NT = Sh::NT, WF = Sh::WF, kStages = Sh::S, kBM = Sh::kBM, kBN = Sh::kBN, kWarpN = Sh::kWarpN, kCld = Sh::kCld;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    Tiles<Sh>& t = *reinterpret_cast<Tiles<Sh>*>(smem_raw);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, lg = lane / 4, lt = lane % 4;
    const int n0 = blockIdx.x * kBN, m0 = blockIdx.y * kBM;
    const int kt0 = blockIdx.z * a.tiles_per_split, kt1 = min(a.K / kBK, kt0 + a.tiles_per_split);
    const int code_rows = a.ng * 32;  // row pairs in the codes, the zero padding of the last group included

    // Each thread's cp.async sources for step 0 of this block (advanced by 64 columns a step) and their shared memory
    // destinations in stage 0 (advanced by a stage's bytes). A source out of the matrix zero-fills its destination and points at
    // column k0 of the first row (in bounds, never read).
    constexpr int kXChunks = (kBM * kBK / 8 + kThreads - 1) / kThreads, kCodeChunks = kBN / 2 * kBK / 16 / kThreads;
    constexpr bool kXAll = kBM * kBK / 8 % kThreads == 0;  // every thread copies kXChunks chunks of x
    const __half* xs[kXChunks];
    unsigned x_dst[kXChunks], x_size[kXChunks];
#pragma unroll
    for (int i = 0; i < kXChunks; ++i) {  // x: kBM rows of 128 bytes
        const int c = (tid + i * kThreads) % (kBM * kBK / 8), r = c / (kBK / 8), col = (c % (kBK / 8)) * 8;
        const bool ok = m0 + r < a.M;
        xs[i] = a.x + (ok ? static_cast<size_t>(m0 + r) * a.K + col : 0);
        x_size[i] = ok ? 16 : 0;
        x_dst[i] = smem_address(&t.x[0][r][col]);
    }
    const uint8_t* cs[kCodeChunks];
    unsigned c_dst[kCodeChunks], c_size[kCodeChunks];
#pragma unroll
    for (int i = 0; i < kCodeChunks; ++i) {  // codes: kBN / 2 row pairs of 64 bytes
        const int c = tid + i * kThreads, gp = n0 / 2 + c / 4, col = (c % 4) * 16;
        const bool ok = gp < code_rows;
        cs[i] = a.codes + (ok ? static_cast<size_t>(gp) * a.K + col : 0);
        c_size[i] = ok ? 16 : 0;
        c_dst[i] = smem_address(&t.codes[0][c / 4][col]);
    }
    constexpr int kPairChunks = kBN / 64 * 2 * (kBK / 8);  // pairs: the tile's groups x (scale, min), 8 chunks each
    static_assert(kPairChunks <= kThreads, "one chunk of pairs a thread");
    const bool p_mine = tid < kPairChunks;
    const int p_gi = p_mine ? tid / (kBK / 4) : 0, p_which = tid / (kBK / 8) % 2, p_col = tid % (kBK / 8) * 8;
    const bool p_ok = p_mine && n0 / 64 + p_gi < a.ng;
    const __half* ps = a.pairs + (p_ok ? (static_cast<size_t>(n0 / 64 + p_gi) * 2 + p_which) * a.K + p_col : 0);
    const unsigned p_dst = smem_address(&t.pairs[0][p_gi][p_which][p_col]), p_size = p_ok ? 16 : 0;

    auto load = [&](int kt, int s) {
        const int k0 = kt * kBK;
#pragma unroll
        for (int i = 0; i < kXChunks; ++i)
            if (kXAll || tid + i * kThreads < kBM * kBK / 8) cp_async16(x_dst[i] + s * sizeof(t.x[0]), xs[i] + k0, x_size[i]);
#pragma unroll
        for (int i = 0; i < kCodeChunks; ++i) cp_async16(c_dst[i] + s * sizeof(t.codes[0]), cs[i] + k0, c_size[i]);
        if (p_mine) cp_async16(p_dst + s * sizeof(t.pairs[0]), ps + k0, p_size);
    };

    // acc[w][n]: m16 tile w of this warp's features (rows g, g + 8: features warp * kWarpN + 16 w + 2 g, + 1) by n8 tile n of
    // the block's rows of x.
    float acc[WF][NT][4];
#pragma unroll
    for (int w = 0; w < WF; ++w)
#pragma unroll
        for (int n = 0; n < NT; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[w][n][e] = 0.0f;
    const int gi = warp * kWarpN / 64;  // this warp's group within the tile (all its features are in one)

    int fetch = kt0;
    for (int s = 0; s < kStages - 1; ++s, ++fetch) {
        if (fetch < kt1) load(fetch, s);
        cp_async_commit();
    }
    const __half2 base = as_half2(a.code_base), base_hi = as_half2(a.code_base_hi);
    for (int kt = kt0; kt < kt1; ++kt) {
        const int s = (kt - kt0) % kStages;
        cp_async_wait_stage<kStages>();
        __syncthreads();  // step kt has landed for every thread; every warp is done with step kt - 1
        if (fetch < kt1) load(fetch, (fetch - kt0) % kStages);
        cp_async_commit();
        ++fetch;
#pragma unroll
        for (int c = lane; c < kBK; c += 32) {  // one reciprocal per column of the group, not a division per element
            // A zero-filled group (scale 0) gets a finite 1e4: its codes are 0 and min 0, so its weights stay 0. Real scales are
            // >= 15 / 131008 > 1e-4 (the widest fp16 range).
            // The hardware reciprocal (within 2 fp32 ulps, then rounded to fp16): no IEEE slow path on the way.
            t.inv[warp][c] = __float2half_rn(__fdividef(1.0f, fmaxf(__half2float(t.pairs[s][gi][0][c]), 1e-4f)));
        }
        __syncwarp();
        // The step in two halves of 32 columns (k16 chunks 2 h and 2 h + 1): this lane's columns of a chunk c are 16 lt + 4 c ..
        // + 3, code bytes 4 c .. 4 c + 3 of its row pair: fragment registers 0 and 1 the first two columns, 2 and 3 the last two.
        uint4 code[WF];  // this lane's 16 code bytes of each of its row pairs
#pragma unroll
        for (int w = 0; w < WF; ++w) code[w] = *reinterpret_cast<const uint4*>(&t.codes[s][warp * kWarpN / 2 + 8 * w + lg][16 * lt]);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const uint4 iv = *reinterpret_cast<const uint4*>(&t.inv[warp][16 * lt + 8 * h]);
            const uint4 mv = *reinterpret_cast<const uint4*>(&t.pairs[s][gi][1][16 * lt + 8 * h]);
            const uint32_t inv[4] = {iv.x, iv.y, iv.z, iv.w}, mn[4] = {mv.x, mv.y, mv.z, mv.w};
            // B fragments of the half: row lg of each n8 tile of x, columns 16 lt + 8 h .. + 7.
            uint32_t xb[NT][4];
#pragma unroll
            for (int n = 0; n < NT; ++n) {
                const uint4 u = *reinterpret_cast<const uint4*>(&t.x[s][8 * n + lg][16 * lt + 8 * h]);
                xb[n][0] = u.x, xb[n][1] = u.y, xb[n][2] = u.z, xb[n][3] = u.w;
            }
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                uint32_t af[WF][4];  // the A fragment of each m16 tile for chunk c of the half
#pragma unroll
                for (int w = 0; w < WF; ++w) {
                    const uint32_t word = h ? (c ? code[w].w : code[w].z) : (c ? code[w].y : code[w].x);
#pragma unroll
                    for (int j = 0; j < 2; ++j) {                                           // bytes 2j and 2j + 1 of the word
                        const uint32_t spread = __byte_perm(word, 0, j ? 0x4342 : 0x4140);  // [byte, 0, byte, 0]
                        // Each nibble masked in place under an exponent that makes it the units: fp16 1024 + code
                        // (low nibble), 64 + code (high nibble, bits 4-7: no shift).
                        const uint32_t lo = and_or(spread, 0x000f000fu, 0x64006400u);
                        const uint32_t hi = and_or(spread, 0x00f000f0u, 0x54005400u);
                        const __half2 sc = as_half2(inv[2 * c + j]), m = as_half2(mn[2 * c + j]);
                        af[w][2 * j] = as_u32(__hfma2(__hsub2(as_half2(hi), base_hi), sc, m));   // row g: the even feature
                        af[w][2 * j + 1] = as_u32(__hfma2(__hsub2(as_half2(lo), base), sc, m));  // row g + 8: the odd one
                    }
                }
                // n outermost: WF independent products between two into the same accumulator.
#pragma unroll
                for (int n = 0; n < NT; ++n)
#pragma unroll
                    for (int w = 0; w < WF; ++w) mma16816(acc[w][n], af[w], xb[n][2 * c], xb[n][2 * c + 1]);
            }
        }
    }

    asm volatile("cp.async.wait_all;\n" ::);
    __syncthreads();  // the tiles are dead: the shared memory now holds the fp32 result tile
    auto* C = reinterpret_cast<float*>(smem_raw);
    // Accumulator e of tile (w, n): feature row g (+ 8 for e >= 2: the odd feature), row of x 8 n + 2 lt + (e & 1).
#pragma unroll
    for (int w = 0; w < WF; ++w)
#pragma unroll
        for (int n = 0; n < NT; ++n)
#pragma unroll
            for (int e = 0; e < 2; ++e)
                *reinterpret_cast<float2*>(&C[(8 * n + 2 * lt + e) * kCld + warp * kWarpN + 16 * w + 2 * lg]) =
                    make_float2(acc[w][n][e], acc[w][n][e + 2]);
    // The blocks of one tile (the splits of `in`) form a cluster: each sums a slice of the tile's rows over every block's shared
    // memory, in block order (deterministic), and writes y. No partial sums in global memory.
    cg::cluster_group cluster = cg::this_cluster();
    const int splits = static_cast<int>(cluster.num_blocks()), rank = static_cast<int>(cluster.block_rank());
    cluster.sync();
    const float* parts[kGroup4MaxSplits];
    for (int r = 0; r < splits; ++r) parts[r] = cluster.map_shared_rank(C, r);
    const int r0 = kBM * rank / splits, r1 = kBM * (rank + 1) / splits;
    for (int e = r0 * (kBN / 4) + tid; e < r1 * (kBN / 4); e += kThreads) {  // 4 features a thread at a time
        const int r = e / (kBN / 4), c = e % (kBN / 4) * 4, m = m0 + r, n = n0 + c;
        if (m >= a.M || n >= a.N) continue;
        // Every block's part loaded first (distributed shared memory is far: the loads overlap), then summed
        // in block order.
        float4 p[kGroup4MaxSplits];
#pragma unroll
        for (int q = 0; q < kGroup4MaxSplits; ++q)
            if (q < splits) p[q] = *reinterpret_cast<const float4*>(&parts[q][r * kCld + c]);
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int q = 0; q < kGroup4MaxSplits; ++q)
            if (q < splits) v.x += p[q].x, v.y += p[q].y, v.z += p[q].z, v.w += p[q].w;
        const float out[4] = {v.x, v.y, v.z, v.w};
        for (int j = 0; j < 4 && n + j < a.N; ++j) {
            float o = out[j] + (a.bias ? __half2float(a.bias[n + j]) : 0.0f);
            a.y[static_cast<size_t>(m) * a.N + n + j] = __float2half_rn(a.relu ? fmaxf(o, 0.0f) : o);
        }
    }
    cluster.sync();  // no block leaves while another still reads its shared memory
}

// Once per process: each kernel may use more than 48 KiB of shared memory.
template <class Sh>
void allow_smem() {
    FLEXRT_CUDA_CHECK(
        cudaFuncSetAttribute(linear_group4_kernel<Sh>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes<Sh>())));
}
void prepare_launches() {
    static const bool once = [] {
        allow_smem<Rows8>(), allow_smem<Rows16>(), allow_smem<Rows32>(), allow_smem<Rows64>();
        return true;
    }();
    (void)once;
}

template <class Sh>
cudaLaunchConfig_t config(unsigned tiles_x, unsigned tiles_y, int splits, cudaStream_t stream, cudaLaunchAttribute& cluster) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(tiles_x, tiles_y, static_cast<unsigned>(splits));
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = smem_bytes<Sh>();
    cfg.stream = stream;
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = 1, cluster.val.clusterDim.y = 1, cluster.val.clusterDim.z = static_cast<unsigned>(splits);
    cfg.attrs = &cluster;
    cfg.numAttrs = 1;
    return cfg;
}

// How many clusters of `splits` blocks the GPU holds at once (0: that size does not fit), once per size and process.
template <class Sh>
int resident_clusters(int splits) {
    static std::array<std::atomic<int>, kGroup4MaxSplits + 1> known{};  // count + 1; 0 until asked
    int n = known[splits].load();
    if (n == 0) {
        cudaLaunchAttribute cluster{};
        const cudaLaunchConfig_t cfg = config<Sh>(1, 1, splits, nullptr, cluster);
        int count = 0;
        if (cudaOccupancyMaxActiveClusters(&count, linear_group4_kernel<Sh>, &cfg) != cudaSuccess) {
            (void)cudaGetLastError();  // a size the device rejects: not a candidate
            count = 0;
        }
        n = count + 1;
        known[splits].store(n);
    }
    return n - 1;
}

template <class Sh>
void launch(const Args& a, int64_t rows, cudaStream_t stream) {
    const dim3 grid(static_cast<unsigned>((a.N + Sh::kBN - 1) / Sh::kBN), static_cast<unsigned>((rows + Sh::kBM - 1) / Sh::kBM));
    const Group4Split split = choose_group4_split(static_cast<int64_t>(grid.x) * grid.y, a.K / kBK, kGroup4MaxSplits, kGroup4ReduceSteps,
                                                  [](int s) { return resident_clusters<Sh>(s); });
    Args args = a;
    args.tiles_per_split = split.steps_per_split;
    cudaLaunchAttribute cluster{};
    const cudaLaunchConfig_t cfg = config<Sh>(grid.x, grid.y, split.splits, stream, cluster);
    FLEXRT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, linear_group4_kernel<Sh>, args));
}

}  // namespace

void linear_group4(const uint16_t* x, int64_t rows, const uint8_t* packed, const Group4Layout& L, const uint16_t* b, uint16_t* y, bool relu,
                   void* stream) {
    if (!fusable_group4(L))
        throw Error(FLEXRT_STATUS_INVALID_ARGUMENT, "linear_group4: layout not fusable (outer " + std::to_string(L.outer) +
                                                        ", group_size " + std::to_string(L.group_size) + ", in " + std::to_string(L.inner) +
                                                        ")");
    if (rows == 0 || L.dim == 0) return;
    prepare_launches();
    const uint32_t base = L.symmetric ? 0x6408u : 0x6400u, base_hi = L.symmetric ? 0x5480u : 0x5400u;  // fp16 1032 / 1024, 72 / 64
    const Args a{reinterpret_cast<const __half*>(x),
                 static_cast<int>(rows),
                 static_cast<int>(L.inner),
                 static_cast<int>(L.dim),
                 packed,
                 reinterpret_cast<const __half*>(packed + L.code_bytes()),
                 static_cast<int>(L.groups()),
                 0,
                 base * 0x10001u,
                 base_hi * 0x10001u,
                 reinterpret_cast<const __half*>(b),
                 reinterpret_cast<__half*>(y),
                 relu};
    // As few n8 tiles as the rows need (a decode batch of 8 does not pay for 64 rows of products).
    auto* s = static_cast<cudaStream_t>(stream);
    if (rows <= 8)
        launch<Rows8>(a, rows, s);
    else if (rows <= 16)
        launch<Rows16>(a, rows, s);
    else if (rows <= 32)
        launch<Rows32>(a, rows, s);
    else
        launch<Rows64>(a, rows, s);
}

}  // namespace flexrt::ops::cuda
