// How the fused group4 GEMM (linear_group4_cuda.cu) splits `in` over the blocks of a thread-block cluster when its output
// tiles alone leave SMs idle. Host code, apart from the CUDA kernel, so the rule is tested without a GPU.
#pragma once

#include <algorithm>
#include <cstdint>

namespace flexrt::ops {

// What the reduction over a cluster costs, in steps of `in`, when choosing the split (measured: with 4, the 30B layer's GEMMs at
// 64 rows take 3% less than with 0).
constexpr int kGroup4ReduceSteps = 4;
// The most blocks a cluster may have: the portable maximum. (16, the H100's non-portable maximum, measured slower: its
// reduction costs more than kGroup4ReduceSteps says.)
constexpr int kGroup4MaxSplits = 8;

struct Group4Split {
    int splits;           // blocks a cluster: one output tile's parts of `in`
    int steps_per_split;  // 64-column steps of `in` a block; the last block may have fewer, none has 0
};

// `tiles` output tiles, `steps` steps of `in` each. resident(s): how many clusters of s blocks the GPU holds at once (0: that
// size does not fit), which depends on how it packs clusters into its GPCs, not just on the blocks an SM holds: on the H100,
// 264 blocks of the 64-row kernel fit, but only 32 clusters of 7 (224 blocks). The choice minimises the steps of the busiest
// block: whole waves of resident clusters times the steps a block, a split's reduction counted as `reduce_steps`; the smaller
// split on a tie. At most `max_splits`, and only while a block keeps >= 4 steps.
template <class Resident>
Group4Split choose_group4_split(int64_t tiles, int steps, int max_splits, int reduce_steps, Resident&& resident) {
    int splits = 1;
    int64_t best = INT64_MAX;
    for (int s = 1; s <= std::min(max_splits, std::max(1, steps / 4)); ++s) {
        const int64_t clusters = resident(s);
        if (clusters <= 0) continue;
        const int64_t per = (steps + s - 1) / s + (s > 1 ? reduce_steps : 0);
        const int64_t cost = (tiles + clusters - 1) / clusters * per;
        if (cost < best) best = cost, splits = s;
    }
    const int per = (steps + splits - 1) / splits;
    return {std::max(1, (steps + per - 1) / per), per};  // e.g. 9 steps in 4 splits: 3 a block, so 3 blocks
}

}  // namespace flexrt::ops
