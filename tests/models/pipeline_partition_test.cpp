// The pipeline split (FlexLLMGen's, reference section 7.2): every layer-list entry on exactly one stage, in
// order; decoder layers as even as can be, the first (layers mod ranks) stages one more; the input embedding on
// stage 0, the output embedding on the last; an attention and its MLP never apart.
#include "test_util.hpp"

#include "engine/pipeline_partition.hpp"

namespace flexrt::test {
namespace {

TEST(PipelinePartition, EvenContiguousAndEmbeddingsAtTheEnds) {
    for (int64_t layers = 1; layers <= 96; ++layers)
        for (int64_t per : {1, 2})
            for (int64_t ranks = 1; ranks <= std::min<int64_t>(layers, 8); ++ranks) {
                const auto slices = partition_layers(layers, per, ranks);
                ASSERT_EQ(static_cast<int64_t>(slices.size()), ranks);
                EXPECT_EQ(slices.front().begin, 0);
                EXPECT_EQ(slices.back().end, layers * per + 2);  // input embedding, the layers, output embedding
                for (int64_t r = 0; r < ranks; ++r) {
                    const auto& s = slices[static_cast<size_t>(r)];
                    if (r) { EXPECT_EQ(s.begin, slices[static_cast<size_t>(r - 1)].end); }
                    const int64_t decoder = (s.size() - (r == 0) - (r == ranks - 1)) / per;
                    EXPECT_EQ((s.size() - (r == 0) - (r == ranks - 1)) % per, 0) << "an attention apart from its MLP";
                    EXPECT_EQ(decoder, layers / ranks + (r < layers % ranks ? 1 : 0))
                        << layers << " layers, " << ranks << " ranks, stage " << r;
                }
            }
    // OPT-30B's 48 layers over 4 GPUs, sep_layer: 12 each, stage 0 one entry more, the last one more.
    const auto s = partition_layers(48, 2, 4);
    EXPECT_EQ(s[0].size(), 25);
    EXPECT_EQ(s[1].size(), 24);
    EXPECT_EQ(s[3].size(), 25);
}

TEST(PipelinePartition, MoreRanksThanLayersIsAClearError) {
    try {
        partition_layers(3, 2, 4);
        ADD_FAILURE() << "4 stages of 3 layers accepted";
    } catch (const Error& e) { EXPECT_NE(std::string(e.what()).find("4 stages"), std::string::npos) << e.what(); }
}

}  // namespace
}  // namespace flexrt::test
