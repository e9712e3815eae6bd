// The schedule plugin library: exports each in-tree schedule as its own plugin.
#include "schedules.hpp"

#include <flexrt/sdk.hpp>

namespace {

using RunFn = flexrt_status (*)(flexrt::IExecutor&);

class Schedule final : public flexrt::IScheduler {
public:
    Schedule(const flexrt_host* host, RunFn fn) : host_(host), fn_(fn) {}
    flexrt_status run(flexrt::IExecutor* ex) noexcept override {
        return flexrt::sdk::guard(host_, [&] { return fn_(*ex); });
    }
    void release() noexcept override { delete this; }

private:
    const flexrt_host* host_;
    RunFn fn_;
};

template <RunFn Fn>
flexrt_status create(const flexrt_host* host, const flexrt_field*, uint32_t, void** out) {
    return flexrt::sdk::guard(host, [&] {
        *out = static_cast<flexrt::IScheduler*>(new Schedule(host, Fn));
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_SCHEDULE, "normal", "0.1.0",
                                     "no overlap: load, compute, store in order (FlexLLMGen --overlap false)", nullptr, 0,
                                     &create<flexrt::schedule::run_normal>),
               flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_SCHEDULE, "overlap_single", "0.1.0",
                                     "one GPU batch: the next layer's weights and cache load while a layer computes", nullptr, 0,
                                     &create<flexrt::schedule::run_overlap_single>),
               flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_SCHEDULE, "overlap_multi", "0.1.0",
                                     "several GPU batches: a layer's weights once a block, the next batch's cache and input load "
                                     "while a batch computes",
                                     nullptr, 0, &create<flexrt::schedule::run_overlap_multi>))
