// The memory plan against what the engine then allocates: for policies over every tier, with compression,
// cpu_cache_compute, several GPU batches, fused layers, dummy weights and weights read from their files,
// the plan's bytes per tier are the engine's peak bytes per tier, exactly (on the CPU tiers, which round
// nothing). A plan that forgot a buffer, or sized one differently, fails here.
#include "test_util.hpp"

#include "engine/engine.hpp"
#include "engine/memory_plan.hpp"

namespace flexrt::test {
namespace {

struct Case {
    const char* name;
    int64_t gbs, ngb;
    TierShare weights, cache, activations;
    bool separate = true, cpu_cache_compute = false, compress_weights = false, compress_cache = false;
};

TEST(MemoryPlan, IsWhatTheEngineAllocates) {
    auto group4 = make_compressor("group4");
    const auto* format = static_cast<const Group4Format*>(group4->get_extension(kGroup4Extension, 1));
    ASSERT_NE(format, nullptr);
    const opt::OptConfig model = tiny_config();
    for (const Case& c :
         {Case{"all_on_compute", 4, 1, {100, 0}, {100, 0}, {100, 0}}, Case{"split_everything", 2, 2, {30, 40}, {25, 50}, {50, 25}},
          Case{"on_disk_fused_layers", 1, 4, {0, 0}, {0, 0}, {0, 0}, false},
          Case{"cache_on_host_attended_there", 4, 1, {50, 50}, {0, 100}, {100, 0}, true, true},
          Case{"compressed_split", 2, 2, {20, 30}, {50, 0}, {100, 0}, true, false, true, true},
          Case{"compressed_on_disk", 4, 1, {0, 0}, {100, 0}, {100, 0}, true, false, true, false}}) {
        for (const bool from_files : {false, true})
            for (int st = -1; st < 2; ++st) {  // the whole model, or stage 0 or 1 of two with 2 micro-batches
                Tiers t("mmap");
                const EngineStage stage =
                    st < 0 ? EngineStage{} : EngineStage{partition_layers(model.num_layers, c.separate ? 2 : 1, 2)[st], 2, st == 1};
                Policy p;
                p.gpu_batch_size = c.gbs, p.num_gpu_batches = c.ngb, p.weights = c.weights, p.cache = c.cache,
                p.activations = c.activations;
                p.separate_attention_mlp = c.separate, p.cpu_cache_compute = c.cpu_cache_compute;
                p.compress_weights = c.compress_weights, p.compress_cache = c.compress_cache;
                opt::DummyWeights dummy(3);
                opt::NumpyDirWeights numpy(fixture_dir("tiny_opt") / "weights", t.disk);
                opt::WeightSource& source = from_files ? static_cast<opt::WeightSource&>(numpy) : dummy;
                const int64_t prompt_len = 9, gen_len = 5;
                const MemoryPlan plan = plan_memory(model, p, prompt_len, gen_len, t.ops->act_bytes(),
                                                    c.compress_weights || c.compress_cache ? format : nullptr, source, stage);
                Engine engine(model, p, prompt_len, gen_len, {*t.ops, t.compute, t.host, t.disk, t.transfers}, source, {},
                              c.compress_weights || c.compress_cache ? group4.get() : nullptr, nullptr, stage);
                const std::string where = std::string(c.name) + (from_files ? " (weights from files)" : " (dummy weights)") +
                                          (st < 0 ? "" : ", pipeline stage " + std::to_string(st) + " of 2");
                EXPECT_EQ(plan.total(TierKind::compute), t.compute.peak_bytes()) << where;
                EXPECT_EQ(plan.total(TierKind::host), t.host.peak_bytes()) << where;
                EXPECT_EQ(plan.total(TierKind::disk), t.disk.peak_bytes()) << where;
                EXPECT_GT(plan.total(TierKind::compute), 0u) << where;
            }
    }
}

}  // namespace
}  // namespace flexrt::test
