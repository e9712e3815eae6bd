// The arithmetic of placement, shared by the engine (which allocates) and the memory plan (which only
// counts): how a layer's weight blob is laid out and split between the tiers, and how a GPU batch's
// sequences are split.
#pragma once

#include "core/src/config.hpp"
#include "core/src/device.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace flexrt {

constexpr uint64_t kSplitAlign = 4096;  // tier boundaries inside a layer's weights: O_DIRECT-friendly
constexpr uint64_t kTensorAlign = 64;   // each tensor inside a layer's weight blob
// Compute-device slots for the weights a layer does not keep there, filled round robin. The schedules load one
// layer ahead, so with three the load of layer j + 1 starts while j - 1 may still be computing: the link or the
// disk always has the next layer queued. With two it waited for j - 1 to end, which left PCIe idle between
// layers in W2's decode (~5% of a step) and the GPU waiting for MLP weights in its prefill (0.46 of 3.9 s).
constexpr int kWeightSlots = 3;

// `bytes` rounded up to the next tensor's start.
inline uint64_t tensor_span(uint64_t bytes) { return (bytes + kTensorAlign - 1) / kTensorAlign * kTensorAlign; }

// Sequences [first, first + count) of a GPU batch that live on one tier.
struct SeqGroup {
    TierKind tier;
    int64_t first, count;
};

// Splits n sequences over gpu / cpu / disk by the share (whole sequences; cumulative rounding down).
inline std::vector<SeqGroup> split_sequences(int64_t n, const TierShare& share) {
    const auto gpu = static_cast<int64_t>(std::floor(n * share.gpu / 100.0 + 1e-9));
    const auto gpu_cpu = std::min(n, static_cast<int64_t>(std::floor(n * (share.gpu + share.cpu) / 100.0 + 1e-9)));
    std::vector<SeqGroup> out;
    if (gpu > 0) out.push_back({TierKind::compute, 0, gpu});
    if (gpu_cpu > gpu) out.push_back({TierKind::host, gpu, gpu_cpu - gpu});
    if (n > gpu_cpu) out.push_back({TierKind::disk, gpu_cpu, n - gpu_cpu});
    return out;
}

// Byte offset where a tier's share of `total` ends: exact at 100 percent, else rounded down to kSplitAlign.
inline uint64_t split_point(uint64_t total, double percent) {
    if (percent >= 100.0 - 1e-9) return total;
    const auto p = static_cast<uint64_t>(static_cast<double>(total) * percent / 100.0);
    return std::min(total, p / kSplitAlign * kSplitAlign);
}

// Whether a KV cache group on this tier is copied to the compute device for attention (else it is read
// where it is: on the compute device, or in host memory under policy.cpu_cache_compute).
inline bool loads_cache(TierKind t, const Policy& policy) {
    return t == TierKind::disk || (t == TierKind::host && !policy.cpu_cache_compute);
}

}  // namespace flexrt
