// An executor that runs nothing and checks the order a schedule calls it in, against the engine's rules
// (engine/engine.hpp): two buffers of each kind on the compute device, by the parity of j (weights) or of
// j * batches + k (cache, input, output). A load may only fill a buffer whose last user has computed; a
// compute needs its loads; a point's outputs are stored after it computes, before its buffer is reused and
// before its step ends; every point computes exactly once, and a step's points before its end_step. Wrapped
// indices (scheduler.hpp) are unwrapped first. It can also report every sequence stopped after a step, or fail
// one primitive, to check that a schedule then stops calling.
#pragma once

#include <flexrt/scheduler.hpp>

#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace flexrt::conformance {

class RecordingExecutor final : public IExecutor {
public:
    using Point = std::tuple<int32_t, int32_t, int32_t>;
    RecordingExecutor(int32_t gen_len, int32_t layers, int32_t batches) : G_(gen_len), L_(layers), K_(batches) {}

    // end_step(i) reports every sequence stopped.
    void stop_after_step(int32_t i) { stop_after_ = i; }
    // The primitive `name` ("compute_layer", ...) fails with IO_ERROR at point p.
    void fail_at(std::string name, Point p) { fail_name_ = std::move(name), fail_point_ = p; }

    flexrt_schedule_dims dims() const noexcept override;
    flexrt_status begin_step(int32_t i) noexcept override;
    flexrt_status load_weight(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status load_cache(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status load_hidden(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status compute_layer(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status store_cache(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status store_hidden(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status sync() noexcept override { return FLEXRT_STATUS_OK; }
    flexrt_status end_step(int32_t i, int32_t* all_stopped) noexcept override;

    // The rules broken, one a line: the first five, then how many more ("" when none).
    std::string errors() const;
    size_t computed() const { return computed_.size(); }
    int32_t steps_ended() const { return ended_; }
    // Primitives other than sync called after the failing one.
    int calls_after_failure() const { return calls_after_failure_; }

private:
    struct Buffer {
        Point holder{-1, -1, -1};
        bool used = true;  // its holder has computed (or it holds nothing)
    };
    int slot(int32_t j, int32_t k) const { return (j * K_ + k) % 2; }
    bool in(const Point& p) const;
    std::optional<Point> unwrap_load(int32_t i, int32_t j, int32_t k) const;
    std::optional<Point> unwrap_store(int32_t i, int32_t j, int32_t k) const;
    // Counts calls after a failure; returns the injected failure when this call is it.
    std::optional<flexrt_status> enter(const char* name, const Point& p);
    flexrt_status fill(Buffer& b, Point holder, const char* what, const Point& at);
    flexrt_status fail(const std::string& what, const Point& p);
    void expect(bool ok, const char* what);

    int32_t G_, L_, K_, step_ = -1, ended_ = 0, stop_after_ = -1;
    bool stopped_ = false, failed_ = false;
    int calls_after_failure_ = 0;
    std::string fail_name_;
    Point fail_point_{-1, -1, -1};
    Buffer weights_[2], cache_[2], input_[2];
    bool pending_out_[2] = {false, false}, pending_kv_[2] = {false, false};
    Point out_of_[2];
    std::set<Point> computed_, stored_hidden_;
    std::vector<std::string> errors_;
};

}  // namespace flexrt::conformance
