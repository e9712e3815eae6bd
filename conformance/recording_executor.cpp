#include "recording_executor.hpp"

#include <algorithm>

namespace flexrt::conformance {

flexrt_schedule_dims RecordingExecutor::dims() const noexcept {
    return {sizeof(flexrt_schedule_dims), static_cast<uint32_t>(G_), static_cast<uint32_t>(L_), static_cast<uint32_t>(K_)};
}

bool RecordingExecutor::in(const Point& p) const {
    const auto [i, j, k] = p;
    return i >= 0 && i < G_ && j >= 0 && j < L_ && k >= 0 && k < K_;
}

// A load with k == K means (j + 1, 0); with j == L, (i + 1, 0); past the last step it does nothing.
std::optional<RecordingExecutor::Point> RecordingExecutor::unwrap_load(int32_t i, int32_t j, int32_t k) const {
    if (k == K_) ++j, k = 0;
    if (j == L_) ++i, j = 0;
    if (i >= G_) return std::nullopt;
    return Point{i, j, k};
}
// A store with k == -1 means (j - 1, last k); with j == -1, (i - 1, last j); before step 0 it does nothing.
std::optional<RecordingExecutor::Point> RecordingExecutor::unwrap_store(int32_t i, int32_t j, int32_t k) const {
    if (k == -1) --j, k = K_ - 1;
    if (j == -1) --i, j = L_ - 1;
    if (i < 0) return std::nullopt;
    return Point{i, j, k};
}

std::optional<flexrt_status> RecordingExecutor::enter(const char* name, const Point& p) {
    if (failed_) ++calls_after_failure_;
    if (stopped_) expect(false, "a primitive called after every sequence stopped");
    if (!failed_ && name == fail_name_ && p == fail_point_) {
        failed_ = true;
        return FLEXRT_STATUS_IO_ERROR;
    }
    return std::nullopt;
}

flexrt_status RecordingExecutor::begin_step(int32_t i) noexcept {
    if (auto s = enter("begin_step", {i, -1, -1})) return *s;
    expect(i == step_ + 1, "begin_step out of order");
    expect(ended_ == i, "begin_step before the last step ended");
    step_ = i;
    return FLEXRT_STATUS_OK;
}

flexrt_status RecordingExecutor::load_weight(int32_t i, int32_t j, int32_t k) noexcept {
    if (auto s = enter("load_weight", {i, j, k})) return *s;
    const auto p = unwrap_load(i, j, k);
    if (!p) return FLEXRT_STATUS_OK;
    if (!in(*p)) return fail("load_weight outside the grid", {i, j, k});
    if (std::get<2>(*p) != 0) return FLEXRT_STATUS_OK;  // acts at k == 0 only (scheduler.hpp)
    return fill(weights_[std::get<1>(*p) % 2], {std::get<0>(*p), std::get<1>(*p), 0}, "weights", {i, j, k});
}

flexrt_status RecordingExecutor::load_cache(int32_t i, int32_t j, int32_t k) noexcept {
    const auto p = unwrap_load(i, j, k);
    if (auto s = enter("load_cache", p.value_or(Point{i, j, k}))) return *s;  // matched unwrapped: a failure injected at a point
    if (!p || std::get<0>(*p) == 0) return FLEXRT_STATUS_OK;                  // the prefill has no cache to read
    if (!in(*p)) return fail("load_cache outside the grid", {i, j, k});
    return fill(cache_[slot(std::get<1>(*p), std::get<2>(*p))], *p, "cache", {i, j, k});
}

flexrt_status RecordingExecutor::load_hidden(int32_t i, int32_t j, int32_t k) noexcept {
    if (auto s = enter("load_hidden", {i, j, k})) return *s;
    const auto p = unwrap_load(i, j, k);
    if (!p) return FLEXRT_STATUS_OK;
    if (!in(*p)) return fail("load_hidden outside the grid", {i, j, k});
    const auto [pi, pj, pk] = *p;
    // The input of the next step's first layer is the last step's token: stored before it is read.
    if (pj == 0 && pi > 0) expect(stored_hidden_.count({pi - 1, L_ - 1, pk}), "input loaded before the last step's tokens were stored");
    return fill(input_[slot(pj, pk)], *p, "input", {i, j, k});
}

flexrt_status RecordingExecutor::compute_layer(int32_t i, int32_t j, int32_t k) noexcept {
    if (auto s = enter("compute_layer", {i, j, k})) return *s;
    if (!in({i, j, k}) || i != step_) return fail("compute outside the current step", {i, j, k});
    const int s = slot(j, k);
    expect(weights_[j % 2].holder == Point{i, j, 0}, "compute without its weights");
    expect(input_[s].holder == Point{i, j, k}, "compute without its input");
    if (i > 0) expect(cache_[s].holder == Point{i, j, k}, "compute without its cache");
    expect(!pending_out_[s], "compute into an output buffer not stored yet");
    expect(computed_.insert({i, j, k}).second, "computed twice");
    weights_[j % 2].used = input_[s].used = cache_[s].used = true;
    pending_out_[s] = pending_kv_[s] = true;
    out_of_[s] = {i, j, k};
    return FLEXRT_STATUS_OK;
}

flexrt_status RecordingExecutor::store_hidden(int32_t i, int32_t j, int32_t k) noexcept {
    if (auto s = enter("store_hidden", {i, j, k})) return *s;
    const auto p = unwrap_store(i, j, k);
    if (!p) return FLEXRT_STATUS_OK;
    const int s = slot(std::get<1>(*p), std::get<2>(*p));
    if (!in(*p) || !pending_out_[s] || out_of_[s] != *p) return fail("store_hidden of a point not computed", {i, j, k});
    pending_out_[s] = false;
    stored_hidden_.insert(*p);
    return FLEXRT_STATUS_OK;
}

flexrt_status RecordingExecutor::store_cache(int32_t i, int32_t j, int32_t k) noexcept {
    if (auto s = enter("store_cache", {i, j, k})) return *s;
    const auto p = unwrap_store(i, j, k);
    if (!p) return FLEXRT_STATUS_OK;
    const int s = slot(std::get<1>(*p), std::get<2>(*p));
    if (!in(*p) || !pending_kv_[s] || out_of_[s] != *p) return fail("store_cache of a point not computed", {i, j, k});
    pending_kv_[s] = false;
    return FLEXRT_STATUS_OK;
}

flexrt_status RecordingExecutor::end_step(int32_t i, int32_t* all_stopped) noexcept {
    if (auto s = enter("end_step", {i, -1, -1})) return *s;
    expect(i == step_, "end_step of another step");
    for (int32_t j = 0; j < L_; ++j)
        for (int32_t k = 0; k < K_; ++k) {
            expect(computed_.count({i, j, k}) == 1, "a point of the step never computed");
            expect(stored_hidden_.count({i, j, k}) == 1, "a point's output not stored by the step's end");
        }
    expect(!pending_kv_[0] && !pending_kv_[1], "new KV rows not stored by the step's end");
    ended_ = i + 1;
    *all_stopped = i == stop_after_ ? 1 : 0;
    stopped_ = i == stop_after_;
    return FLEXRT_STATUS_OK;
}

flexrt_status RecordingExecutor::fill(Buffer& b, Point holder, const char* what, const Point& at) {
    if (b.holder == holder) return FLEXRT_STATUS_OK;  // loaded already
    if (!b.used) return fail(std::string("a ") + what + " buffer refilled before its holder computed", at);
    b.holder = holder, b.used = false;
    return FLEXRT_STATUS_OK;
}

flexrt_status RecordingExecutor::fail(const std::string& what, const Point& p) {
    errors_.push_back(what + " at (" + std::to_string(std::get<0>(p)) + ", " + std::to_string(std::get<1>(p)) + ", " +
                      std::to_string(std::get<2>(p)) + ")");
    return FLEXRT_STATUS_INVALID_ARGUMENT;
}

void RecordingExecutor::expect(bool ok, const char* what) {
    if (!ok) errors_.push_back(std::string(what) + " (step " + std::to_string(step_) + ")");
}

std::string RecordingExecutor::errors() const {
    std::string out;
    for (size_t e = 0; e < std::min<size_t>(errors_.size(), 5); ++e) out += errors_[e] + "\n";
    if (errors_.size() > 5) out += "... and " + std::to_string(errors_.size() - 5) + " more\n";
    return out;
}

}  // namespace flexrt::conformance
