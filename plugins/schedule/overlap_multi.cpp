// schedule.overlap_multi: FlexLLMGen's overlapped block schedule for several GPU batches (num_gpu_batches >=
// 2). A layer's weights are loaded once for the whole block (the zig-zag over the token x layer grid), and
// while GPU batch k of layer j computes, the next batch's KV cache and input are loaded and the previous
// batch's output and new KV rows stored: load_weight(j + 1), load_cache(k + 1), store_hidden(k - 1),
// load_hidden(k + 1), compute(k), store_cache(k - 1), the neighbours wrapping across layers. The executor
// orders every transfer by events (no device-wide synchronisation in the loop, where FlexLLMGen has one per
// (j, k)); the block's last stores are issued before the step ends, and prefetches into the next step only
// read what this step has finished (the first batch's tokens are stored before the last batch computes).
#include "schedules.hpp"

#include <flexrt/status.hpp>

namespace flexrt::schedule {

flexrt_status run_overlap_multi(IExecutor& ex) {
    const Grid g(ex.dims());
    if (g.batches < 2)
        throw Error(FLEXRT_STATUS_INVALID_ARGUMENT, "schedule overlap_multi runs several GPU batches; policy.num_gpu_batches is " +
                                                        std::to_string(g.batches) + " (use schedule overlap_single)");
    FLEXRT_TRY(ex.load_weight(0, 0, 0));
    FLEXRT_TRY(ex.load_cache(0, 0, 0));
    FLEXRT_TRY(ex.load_hidden(0, 0, 0));
    for (int32_t i = 0; i < g.steps; ++i) {
        FLEXRT_TRY(ex.begin_step(i));
        Point prev{-1, 0, 0};  // the batch computed before this one, in this step
        for (int32_t j = 0; j < g.layers; ++j)
            for (int32_t k = 0; k < g.batches; ++k) {
                const Point now{i, j, k}, ahead = g.next(now), layer_ahead = g.next_layer({i, j, 0});
                // The next layer's weights: at the layer's first batch, or after its last one where they
                // share the buffer this layer computes from (an odd layer count, across the step boundary).
                const bool weight_early = !g.same_weight_buffer(now, layer_ahead);
                const bool batch_early = g.inside(ahead) && !g.same_batch_buffer(now, ahead);
                if (k == 0 && weight_early && g.inside(layer_ahead)) FLEXRT_TRY(ex.load_weight(layer_ahead.i, layer_ahead.j, 0));
                if (batch_early) FLEXRT_TRY(ex.load_cache(ahead.i, ahead.j, ahead.k));
                if (prev.i >= 0) FLEXRT_TRY(ex.store_hidden(prev.i, prev.j, prev.k));
                if (batch_early) FLEXRT_TRY(ex.load_hidden(ahead.i, ahead.j, ahead.k));
                FLEXRT_TRY(ex.compute_layer(i, j, k));
                if (k + 1 == g.batches && !weight_early && g.inside(layer_ahead))
                    FLEXRT_TRY(ex.load_weight(layer_ahead.i, layer_ahead.j, 0));
                if (prev.i >= 0) FLEXRT_TRY(ex.store_cache(prev.i, prev.j, prev.k));
                if (g.inside(ahead) && !batch_early) {
                    FLEXRT_TRY(ex.store_hidden(i, j, k));  // the next step's input reads this batch's tokens
                    FLEXRT_TRY(ex.store_cache(i, j, k));
                    FLEXRT_TRY(ex.load_cache(ahead.i, ahead.j, ahead.k));
                    FLEXRT_TRY(ex.load_hidden(ahead.i, ahead.j, ahead.k));
                    prev = {-1, 0, 0};
                    continue;
                }
                prev = now;
            }
        if (prev.i >= 0) {
            FLEXRT_TRY(ex.store_hidden(prev.i, prev.j, prev.k));
            FLEXRT_TRY(ex.store_cache(prev.i, prev.j, prev.k));
        }
        int32_t stopped = 0;
        FLEXRT_TRY(ex.end_step(i, &stopped));
        if (stopped) break;
    }
    return FLEXRT_STATUS_OK;
}

}  // namespace flexrt::schedule
