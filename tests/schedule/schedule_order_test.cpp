// The schedule plugins against a recording executor that models the engine's rules (engine.hpp): two
// buffers of each kind on the compute device, by the parity of j (weights) or of j * batches + k (cache,
// input, output). A load may only fill a buffer whose last user has computed; a compute needs its loads; a
// point's outputs are stored after it computes, before its buffer is reused and before its step ends; every
// point computes exactly once, and a step's points before its end_step. Grid shapes with even and odd layer
// counts and batch counts (the step boundary is where buffers may be shared).
#include "test_util.hpp"

#include <flexrt/scheduler.hpp>

#include "core/src/plugin_loader.hpp"

#include <map>
#include <set>
#include <sstream>
#include <tuple>

namespace flexrt::test {
namespace {

using P = std::tuple<int32_t, int32_t, int32_t>;

class Recorder final : public IExecutor {
public:
    Recorder(int32_t G, int32_t L, int32_t K) : G_(G), L_(L), K_(K) {}
    flexrt_schedule_dims dims() const noexcept override {
        return {sizeof(flexrt_schedule_dims), static_cast<uint32_t>(G_), static_cast<uint32_t>(L_), static_cast<uint32_t>(K_)};
    }
    flexrt_status begin_step(int32_t i) noexcept override {
        expect(i == step_ + 1, "begin_step out of order");
        step_ = i;
        return FLEXRT_STATUS_OK;
    }
    flexrt_status load_weight(int32_t i, int32_t j, int32_t k) noexcept override {
        if (!in(i, j, k)) return fail("load_weight outside the grid", i, j, k);
        if (k != 0) return FLEXRT_STATUS_OK;  // acts at k == 0 only (scheduler.hpp)
        return fill(weights_[j % 2], {i, j, 0}, "weights", i, j, k);
    }
    flexrt_status load_cache(int32_t i, int32_t j, int32_t k) noexcept override {
        if (!in(i, j, k)) return fail("load_cache outside the grid", i, j, k);
        return fill(cache_[slot(j, k)], {i, j, k}, "cache", i, j, k);
    }
    flexrt_status load_hidden(int32_t i, int32_t j, int32_t k) noexcept override {
        if (!in(i, j, k)) return fail("load_hidden outside the grid", i, j, k);
        // The input of the next step's first layer is the last step's token: stored before it is read.
        if (j == 0 && i > 0) expect(stored_hidden_.count({i - 1, L_ - 1, k}), "input loaded before the last step's tokens were stored");
        return fill(input_[slot(j, k)], {i, j, k}, "input", i, j, k);
    }
    flexrt_status compute_layer(int32_t i, int32_t j, int32_t k) noexcept override {
        if (!in(i, j, k) || i != step_) return fail("compute outside the current step", i, j, k);
        const int s = slot(j, k);
        expect(weights_[j % 2].holder == P{i, j, 0}, "compute without its weights");
        expect(input_[s].holder == P{i, j, k}, "compute without its input");
        if (i > 0) expect(cache_[s].holder == P{i, j, k}, "compute without its cache");
        expect(!pending_out_[s], "compute into an output buffer not stored yet");
        expect(computed_.insert({i, j, k}).second, "computed twice");
        weights_[j % 2].used = input_[s].used = cache_[s].used = true;
        pending_out_[s] = pending_kv_[s] = true;
        out_of_[s] = {i, j, k};
        return FLEXRT_STATUS_OK;
    }
    flexrt_status store_hidden(int32_t i, int32_t j, int32_t k) noexcept override {
        const int s = slot(j, k);
        if (!in(i, j, k) || !pending_out_[s] || out_of_[s] != P{i, j, k}) return fail("store_hidden of a point not computed", i, j, k);
        pending_out_[s] = false;
        stored_hidden_.insert({i, j, k});
        return FLEXRT_STATUS_OK;
    }
    flexrt_status store_cache(int32_t i, int32_t j, int32_t k) noexcept override {
        const int s = slot(j, k);
        if (!in(i, j, k) || !pending_kv_[s] || out_of_[s] != P{i, j, k}) return fail("store_cache of a point not computed", i, j, k);
        pending_kv_[s] = false;
        return FLEXRT_STATUS_OK;
    }
    flexrt_status sync() noexcept override { return FLEXRT_STATUS_OK; }
    flexrt_status end_step(int32_t i, int32_t* all_stopped) noexcept override {
        expect(i == step_, "end_step of another step");
        for (int32_t j = 0; j < L_; ++j)
            for (int32_t k = 0; k < K_; ++k) {
                expect(computed_.count({i, j, k}) == 1, "a point of the step never computed");
                expect(stored_hidden_.count({i, j, k}) == 1, "a point's output not stored by the step's end");
            }
        expect(!pending_kv_[0] && !pending_kv_[1], "new KV rows not stored by the step's end");
        *all_stopped = 0;
        return FLEXRT_STATUS_OK;
    }
    std::string errors() const { return errors_.str(); }
    size_t computed() const { return computed_.size(); }

private:
    struct Buffer {
        P holder{-1, -1, -1};
        bool used = true;  // its holder has computed (or it holds nothing)
    };
    int slot(int32_t j, int32_t k) const { return (j * K_ + k) % 2; }
    bool in(int32_t i, int32_t j, int32_t k) const { return i >= 0 && i < G_ && j >= 0 && j < L_ && k >= 0 && k < K_; }
    flexrt_status fill(Buffer& b, P holder, const char* what, int32_t i, int32_t j, int32_t k) {
        if (b.holder == holder) return FLEXRT_STATUS_OK;  // loaded already
        if (!b.used) return fail((std::string("a ") + what + " buffer refilled before its holder computed").c_str(), i, j, k);
        b.holder = holder, b.used = false;
        return FLEXRT_STATUS_OK;
    }
    flexrt_status fail(const char* what, int32_t i, int32_t j, int32_t k) {
        errors_ << what << " at (" << i << ", " << j << ", " << k << ")\n";
        return FLEXRT_STATUS_INVALID_ARGUMENT;
    }
    void expect(bool ok, const char* what) {
        if (!ok) errors_ << what << " (step " << step_ << ")\n";
    }
    int32_t G_, L_, K_, step_ = -1;
    Buffer weights_[2], cache_[2], input_[2];
    bool pending_out_[2] = {false, false}, pending_kv_[2] = {false, false};
    P out_of_[2];
    std::set<P> computed_, stored_hidden_;
    std::ostringstream errors_;
};

flexrt_status run_schedule(const std::string& name, IExecutor& ex) {
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_SCHEDULE, name, plugin_search_path({}));
    auto schedule = create_plugin<IScheduler>(ref, {});
    return schedule->run(&ex);
}

TEST(ScheduleOrder, EverySchedulePassesTheEnginesRules) {
    struct Case {
        const char* schedule;
        int32_t G, L, K;
    };
    for (const Case& c : {Case{"normal", 3, 5, 1}, Case{"normal", 2, 4, 3}, Case{"overlap_single", 3, 8, 1},
                          Case{"overlap_single", 3, 5, 1}, Case{"overlap_single", 1, 3, 1}, Case{"overlap_multi", 3, 8, 2},
                          Case{"overlap_multi", 3, 5, 2}, Case{"overlap_multi", 3, 5, 3}, Case{"overlap_multi", 2, 4, 3},
                          Case{"overlap_multi", 1, 3, 4}}) {
        Recorder r(c.G, c.L, c.K);
        EXPECT_EQ(run_schedule(c.schedule, r), FLEXRT_STATUS_OK) << c.schedule << " " << c.G << "x" << c.L << "x" << c.K << ": " << r.errors();
        EXPECT_EQ(r.errors(), "") << c.schedule << " " << c.G << "x" << c.L << "x" << c.K;
        EXPECT_EQ(r.computed(), static_cast<size_t>(c.G * c.L * c.K)) << c.schedule;
    }
}

TEST(ScheduleOrder, OverlapSchedulesRefuseTheOtherBatchCount) {
    Recorder two(2, 4, 2), one(2, 4, 1);
    EXPECT_EQ(run_schedule("overlap_single", two), FLEXRT_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(run_schedule("overlap_multi", one), FLEXRT_STATUS_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace flexrt::test
