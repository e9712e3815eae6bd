// The schedule conformance checks, against a recording executor (recording_executor.hpp): the engine's
// buffer rules on grids of even and odd layer and batch counts, the loop ending when every sequence has
// stopped, and a primitive's failure returned unchanged with no primitive called after it.
#include "check.hpp"
#include "recording_executor.hpp"

#include <flexrt/scheduler.hpp>

namespace flexrt::conformance {
namespace {

namespace fs = std::filesystem;

struct Grid {
    int32_t G, L, K;
    std::string text() const { return std::to_string(G) + " steps x " + std::to_string(L) + " layers x " + std::to_string(K) + " batches"; }
};

flexrt_status run_on(const Subject& s, RecordingExecutor& ex) { return create<IScheduler>(s, "schedule")->run(&ex); }

// A schedule may refuse a batch count it is not made for (overlap_single takes one GPU batch) by returning
// INVALID_ARGUMENT before it calls anything.
bool refused(flexrt_status st, const RecordingExecutor& ex) {
    return st == FLEXRT_STATUS_INVALID_ARGUMENT && ex.computed() == 0 && ex.errors().empty();
}

// The first batch count in 1..4 the schedule accepts on a grid of this many steps and layers.
int32_t accepted_batches(const Subject& s, int32_t G, int32_t L) {
    for (int32_t K = 1; K <= 4; ++K) {
        RecordingExecutor ex(G, L, K);
        if (!refused(run_on(s, ex), ex)) return K;
        take_last_plugin_error();
    }
    throw CheckFailure("the schedule refuses every batch count from 1 to 4");
}

void engine_rules(const Subject& s, const fs::path&, std::string& note) {
    int accepted = 0;
    for (const Grid& g : {Grid{3, 5, 1}, Grid{3, 8, 1}, Grid{1, 3, 1}, Grid{2, 4, 2}, Grid{3, 5, 2}, Grid{3, 8, 2}, Grid{2, 4, 3},
                          Grid{3, 5, 3}, Grid{1, 3, 4}}) {
        RecordingExecutor ex(g.G, g.L, g.K);
        const flexrt_status st = run_on(s, ex);
        if (refused(st, ex)) {
            take_last_plugin_error();
            note += (note.empty() ? "refused: " : ", ") + g.text();
            continue;
        }
        expect(ex.errors().empty(), g.text() + ": " + ex.errors());
        expect_ok(st, "run on " + g.text());
        expect(ex.computed() == static_cast<size_t>(g.G * g.L * g.K),
               g.text() + ": " + std::to_string(ex.computed()) + " points computed, " + std::to_string(g.G * g.L * g.K) + " expected");
        ++accepted;
    }
    expect(accepted > 0, "the schedule refused every grid");
}

void stops_when_every_sequence_stopped(const Subject& s, const fs::path&, std::string&) {
    const int32_t K = accepted_batches(s, 4, 5);
    RecordingExecutor ex(4, 5, K);
    ex.stop_after_step(1);
    const flexrt_status st = run_on(s, ex);
    expect(ex.errors().empty(), "stopped after step 1: " + ex.errors());
    expect_ok(st, "run stopped after step 1");
    expect(ex.steps_ended() == 2, "end_step(1) reported every sequence stopped, yet " + std::to_string(ex.steps_ended()) + " steps ended");
}

void failure_returned_unchanged(const Subject& s, const fs::path&, std::string&) {
    const int32_t K = accepted_batches(s, 3, 5);
    for (const char* primitive : {"compute_layer", "load_cache"}) {
        RecordingExecutor ex(3, 5, K);
        ex.fail_at(primitive, {1, 2, 0});
        const flexrt_status st = run_on(s, ex);
        take_last_plugin_error();
        expect(st == FLEXRT_STATUS_IO_ERROR,
               std::string(primitive) + " failed with IO_ERROR at (1, 2, 0); run returned " + flexrt_status_name(st));
        expect(ex.calls_after_failure() == 0, std::string(primitive) + " failed at (1, 2, 0), and the schedule still made " +
                                                  std::to_string(ex.calls_after_failure()) + " calls (other than sync) after it");
    }
}

}  // namespace

const std::vector<CheckSpec>& schedule_checks() {
    static const std::vector<CheckSpec> checks = {
        {"engine_rules", "the engine's buffer rules on 9 grids (even and odd layers, 1-4 batches); every point computed once",
         &engine_rules},
        {"stops", "when end_step reports every sequence stopped, no further step begins", &stops_when_every_sequence_stopped},
        {"failure", "a primitive's failure is returned unchanged and nothing is called after it", &failure_returned_unchanged},
    };
    return checks;
}

}  // namespace flexrt::conformance
