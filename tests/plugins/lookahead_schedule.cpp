// schedule.lookahead2: FlexLLMGen's normal order, but each layer's weights are loaded two layers ahead (across
// the step boundary too), so two weight loads are in flight while a layer computes. The engine's round robin
// over its weight slots (engine/placement.hpp, kWeightSlots) must give the same tokens as `normal`; with only
// two slots the second load would take the slot of the layer about to compute (a schedule error).
#include <flexrt/scheduler.hpp>
#include <flexrt/sdk.hpp>

namespace {

constexpr int32_t kAhead = 2;

#define TRY(expr)                                        \
    do {                                                 \
        const flexrt_status status_ = (expr);            \
        if (status_ != FLEXRT_STATUS_OK) return status_; \
    } while (0)

flexrt_status run_lookahead(flexrt::IExecutor& ex) {
    const flexrt_schedule_dims d = ex.dims();
    const auto G = static_cast<int32_t>(d.gen_len), L = static_cast<int32_t>(d.num_layers), K = static_cast<int32_t>(d.num_gpu_batches);
    // Layer n of the run's sequence of (step, layer), if there is one.
    auto load = [&](int64_t n) {
        return n < static_cast<int64_t>(G) * L ? ex.load_weight(static_cast<int32_t>(n / L), static_cast<int32_t>(n % L), 0)
                                               : FLEXRT_STATUS_OK;
    };
    for (int32_t i = 0; i < G; ++i) {
        TRY(ex.begin_step(i));
        for (int64_t n = 0; i == 0 && n < kAhead; ++n) TRY(load(n));
        for (int32_t j = 0; j < L; ++j) {
            TRY(load(static_cast<int64_t>(i) * L + j + kAhead));
            for (int32_t k = 0; k < K; ++k) {
                TRY(ex.load_cache(i, j, k));
                TRY(ex.load_hidden(i, j, k));
                TRY(ex.compute_layer(i, j, k));
                TRY(ex.store_hidden(i, j, k));
                TRY(ex.store_cache(i, j, k));
            }
        }
        int32_t stopped = 0;
        TRY(ex.end_step(i, &stopped));
        if (stopped) break;
    }
    return FLEXRT_STATUS_OK;
}

class LookaheadSchedule final : public flexrt::IScheduler {
public:
    flexrt_status run(flexrt::IExecutor* ex) noexcept override { return run_lookahead(*ex); }
    void release() noexcept override { delete this; }
};

flexrt_status create(const flexrt_host* host, const flexrt_field*, uint32_t, void** out) {
    return flexrt::sdk::guard(host, [&] {
        *out = static_cast<flexrt::IScheduler*>(new LookaheadSchedule());
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_SCHEDULE, "lookahead2", "0.0.1", "loads weights two layers ahead (a test plugin)",
                                     nullptr, 0, &create))
