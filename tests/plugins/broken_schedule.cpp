// schedule.broken: breaks the rules the schedule conformance suite checks, so the suite can be seen to fail
// it: it computes a layer before loading its weights, and it ignores every status it gets back.
#include <flexrt/scheduler.hpp>
#include <flexrt/sdk.hpp>

namespace {

class BrokenSchedule final : public flexrt::IScheduler {
public:
    flexrt_status run(flexrt::IExecutor* ex) noexcept override {
        const flexrt_schedule_dims d = ex->dims();
        for (int32_t i = 0; i < static_cast<int32_t>(d.gen_len); ++i) {
            ex->begin_step(i);
            for (int32_t j = 0; j < static_cast<int32_t>(d.num_layers); ++j)
                for (int32_t k = 0; k < static_cast<int32_t>(d.num_gpu_batches); ++k) {
                    ex->load_cache(i, j, k);
                    ex->load_hidden(i, j, k);
                    ex->compute_layer(i, j, k);  // before its weights
                    ex->load_weight(i, j, k);
                    ex->store_cache(i, j, k);
                    ex->store_hidden(i, j, k);
                }
            int32_t stopped = 0;
            ex->end_step(i, &stopped);
        }
        return FLEXRT_STATUS_OK;
    }
    void release() noexcept override { delete this; }
};

flexrt_status create(const flexrt_host* host, const flexrt_field*, uint32_t, void** out) {
    return flexrt::sdk::guard(host, [&] {
        *out = static_cast<flexrt::IScheduler*>(new BrokenSchedule());
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_SCHEDULE, "broken", "0.0.1", "computes before it loads (a test plugin)", nullptr, 0,
                                     &create))
