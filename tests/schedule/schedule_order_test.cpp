// The in-tree schedules' own promises beyond the conformance suite (conformance/schedule_checks.cpp, run on
// them in tests/conformance): which batch counts each overlapped schedule refuses, and the whole grid computed
// and every step ended at the batch count each one is for.
#include "test_util.hpp"

#include "conformance/recording_executor.hpp"

#include <flexrt/scheduler.hpp>

namespace flexrt::test {
namespace {

using conformance::RecordingExecutor;

flexrt_status run_schedule(const std::string& name, IExecutor& ex) {
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_SCHEDULE, name, plugin_search_path({}));
    auto schedule = create_plugin<IScheduler>(ref, {});
    return schedule->run(&ex);
}

TEST(ScheduleOrder, OverlapSchedulesRefuseTheOtherBatchCount) {
    RecordingExecutor two(2, 4, 2), one(2, 4, 1);
    EXPECT_EQ(run_schedule("overlap_single", two), FLEXRT_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(run_schedule("overlap_multi", one), FLEXRT_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(two.computed(), 0u);
    EXPECT_EQ(one.computed(), 0u);
    take_last_plugin_error();
}

TEST(ScheduleOrder, EveryScheduleComputesTheWholeGridInOrder) {
    for (auto [name, K] : {std::pair{"normal", 3}, std::pair{"overlap_single", 1}, std::pair{"overlap_multi", 2}}) {
        RecordingExecutor ex(3, 6, K);
        EXPECT_EQ(run_schedule(name, ex), FLEXRT_STATUS_OK) << name << ": " << ex.errors();
        EXPECT_EQ(ex.errors(), "") << name;
        EXPECT_EQ(ex.computed(), static_cast<size_t>(3 * 6 * K)) << name;
        EXPECT_EQ(ex.steps_ended(), 3) << name;
    }
}

}  // namespace
}  // namespace flexrt::test
