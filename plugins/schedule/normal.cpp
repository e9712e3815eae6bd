// schedule.normal: no overlap. FlexLLMGen's generation_loop_normal: for each step and layer, load the
// layer's weights, then for each GPU batch load its cache and input, compute, and store.
#include "schedules.hpp"

namespace flexrt::schedule {

flexrt_status run_normal(IExecutor& ex) {
    const flexrt_schedule_dims d = ex.dims();
    const int32_t G = static_cast<int32_t>(d.gen_len), L = static_cast<int32_t>(d.num_layers), K = static_cast<int32_t>(d.num_gpu_batches);
    for (int32_t i = 0; i < G; ++i) {
        FLEXRT_TRY(ex.begin_step(i));
        for (int32_t j = 0; j < L; ++j) {
            for (int32_t k = 0; k < K; ++k) FLEXRT_TRY(ex.load_weight(i, j, k));
            for (int32_t k = 0; k < K; ++k) {
                FLEXRT_TRY(ex.load_cache(i, j, k));
                FLEXRT_TRY(ex.load_hidden(i, j, k));
                FLEXRT_TRY(ex.compute_layer(i, j, k));
                FLEXRT_TRY(ex.store_hidden(i, j, k));
                FLEXRT_TRY(ex.store_cache(i, j, k));
            }
        }
        int32_t stopped = 0;
        FLEXRT_TRY(ex.end_step(i, &stopped));
        if (stopped) break;
    }
    return FLEXRT_STATUS_OK;
}

}  // namespace flexrt::schedule
