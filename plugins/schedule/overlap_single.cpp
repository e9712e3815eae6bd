// schedule.overlap_single: FlexLLMGen's overlapped loop for one GPU batch (num_gpu_batches = 1). While layer
// j computes, the next layer's weights and KV cache are loaded and the previous layer's new KV rows stored:
// per layer, load_weight(j + 1), load_cache(j + 1), load_hidden(j), compute(j), store_cache(j - 1),
// store_hidden(j). The executor orders the transfers after what they depend on by events, so there is no
// device-wide synchronisation in the loop (FlexLLMGen's sync() after every layer); the last layer's stores are
// issued before the step ends, so a step's tokens and cache are whole when end_step() sees them.
#include "schedules.hpp"

#include <flexrt/status.hpp>

namespace flexrt::schedule {

flexrt_status run_overlap_single(IExecutor& ex) {
    const Grid g(ex.dims());
    if (g.batches != 1)
        throw Error(FLEXRT_STATUS_INVALID_ARGUMENT, "schedule overlap_single runs one GPU batch; policy.num_gpu_batches is " +
                                                        std::to_string(g.batches) + " (use schedule overlap_multi)");
    FLEXRT_TRY(ex.load_weight(0, 0, 0));
    for (int32_t i = 0; i < g.steps; ++i) {
        FLEXRT_TRY(ex.begin_step(i));
        for (int32_t j = 0; j < g.layers; ++j) {
            const Point now{i, j, 0}, ahead = g.next_layer(now);  // the next layer, the next step's first after the last
            const bool weight_early = g.inside(ahead) && !g.same_weight_buffer(now, ahead);
            const bool cache_early = g.inside(ahead) && !g.same_batch_buffer(now, ahead);
            if (weight_early) FLEXRT_TRY(ex.load_weight(ahead.i, ahead.j, 0));
            if (cache_early) FLEXRT_TRY(ex.load_cache(ahead.i, ahead.j, 0));
            FLEXRT_TRY(ex.load_hidden(i, j, 0));
            FLEXRT_TRY(ex.compute_layer(i, j, 0));
            if (g.inside(ahead) && !weight_early) FLEXRT_TRY(ex.load_weight(ahead.i, ahead.j, 0));
            if (g.inside(ahead) && !cache_early) FLEXRT_TRY(ex.load_cache(ahead.i, ahead.j, 0));
            if (j > 0) FLEXRT_TRY(ex.store_cache(i, j - 1, 0));
            FLEXRT_TRY(ex.store_hidden(i, j, 0));
        }
        FLEXRT_TRY(ex.store_cache(i, g.layers - 1, 0));
        int32_t stopped = 0;
        FLEXRT_TRY(ex.end_step(i, &stopped));
        if (stopped) break;
    }
    return FLEXRT_STATUS_OK;
}

}  // namespace flexrt::schedule
