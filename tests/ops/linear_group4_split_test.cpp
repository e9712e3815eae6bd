// The fused group4 GEMM's split of `in` over a cluster (ops/linear_group4_split.hpp), on the cluster counts an H100 reports
// (cudaOccupancyMaxActiveClusters for the kernel's 64-row shape, 2 blocks an SM: 264 blocks, but fewer as clusters grow).
#include "ops/linear_group4_split.hpp"

#include <gtest/gtest.h>

#include <array>

namespace flexrt::ops {
namespace {

constexpr std::array<int, 9> kH100Rows64 = {0, 264, 132, 79, 62, 47, 39, 32, 30};  // [s]: clusters of s blocks at once

Group4Split on_h100(int64_t tiles, int steps) {
    return choose_group4_split(tiles, steps, kGroup4MaxSplits, kGroup4ReduceSteps, [](int s) { return kH100Rows64[s]; });
}

void expect_covers(const Group4Split& g, int steps) {
    EXPECT_GE(g.splits * g.steps_per_split, steps);
    EXPECT_LT((g.splits - 1) * g.steps_per_split, steps) << "a block without a step";
}

TEST(Group4Split, OptDecodeShapesAt64Rows) {
    struct Case {
        const char* name;
        int64_t tiles;  // 256 features a tile
        int steps;      // 64 columns a step
        int splits, steps_per_split;
    };
    for (const Case& c : {Case{"30B q/k/v/out", 28, 112, 8, 14}, Case{"30B fc1", 112, 112, 2, 56}, Case{"30B fc2", 28, 448, 8, 56},
                          // 36 clusters of 7 (252 blocks, which the SMs would hold) do not fit at once: 32 do. 6 a cluster, one wave.
                          Case{"66B q/k/v/out", 36, 144, 6, 24}, Case{"66B fc2", 36, 576, 6, 96},
                          // 48 clusters of 5: 47 fit. 4 a cluster.
                          Case{"175B q/k/v/out", 48, 192, 4, 48}}) {
        const Group4Split g = on_h100(c.tiles, c.steps);
        EXPECT_EQ(g.splits, c.splits) << c.name;
        EXPECT_EQ(g.steps_per_split, c.steps_per_split) << c.name;
        expect_covers(g, c.steps);
    }
}

TEST(Group4Split, FollowsTheResidentClustersNotTheBlockSlots) {
    // Were clusters of any size packed as densely as single blocks (264 / s), 66B's q/k/v/out would take 7 a cluster: what the
    // rule chose when it counted block slots, and ran in two waves on the H100.
    const Group4Split dense = choose_group4_split(36, 144, kGroup4MaxSplits, kGroup4ReduceSteps, [](int s) { return 264 / s; });
    EXPECT_EQ(dense.splits, 7);
    EXPECT_EQ(on_h100(36, 144).splits, 6);
}

TEST(Group4Split, EdgeCases) {
    // Fewer than 8 steps: no split (a block keeps >= 4 steps).
    EXPECT_EQ(on_h100(1, 3).splits, 1);
    EXPECT_EQ(on_h100(1, 7).splits, 1);
    // Only single blocks fit: no split, whatever it would save.
    const Group4Split single = choose_group4_split(1, 448, kGroup4MaxSplits, kGroup4ReduceSteps, [](int s) { return s == 1 ? 132 : 0; });
    EXPECT_EQ(single.splits, 1);
    EXPECT_EQ(single.steps_per_split, 448);
    // 25 steps in 6 splits are 5 a block: 5 blocks, none without a step.
    const Group4Split rounded = choose_group4_split(1, 25, 6, 0, [](int s) { return s == 1 || s == 6 ? 10 : 0; });
    EXPECT_EQ(rounded.splits, 5);
    EXPECT_EQ(rounded.steps_per_split, 5);
    expect_covers(rounded, 25);
    // A tie goes to the smaller split: 8 steps, 1 tile, split 2 costs 4 + 4 = 8 steps as no split does.
    EXPECT_EQ(on_h100(1, 8).splits, 1);
}

}  // namespace
}  // namespace flexrt::ops
