// The in-tree schedules: each is one function over the executor's primitives.
#pragma once

#include <flexrt/scheduler.hpp>

#include <cstdint>

// Returns the status of `expr` from the enclosing function unless it is OK.
#define FLEXRT_TRY(expr)                                     \
    do {                                                     \
        flexrt_status flexrt_s_ = (expr);                    \
        if (flexrt_s_ != FLEXRT_STATUS_OK) return flexrt_s_; \
    } while (0)

namespace flexrt::schedule {

flexrt_status run_normal(IExecutor& ex);
flexrt_status run_overlap_single(IExecutor& ex);
flexrt_status run_overlap_multi(IExecutor& ex);

// A point (step i, layer j, GPU batch k) of the generation grid, and its neighbours in the order the grid is
// traversed (k fastest, then j, then i). The overlapped schedules name their prefetches and lagging stores
// this way and call the executor only with points inside the grid.
struct Point {
    int32_t i, j, k;
};
struct Grid {
    int32_t steps, layers, batches;
    explicit Grid(const flexrt_schedule_dims& d)
        : steps(static_cast<int32_t>(d.gen_len)),
          layers(static_cast<int32_t>(d.num_layers)),
          batches(static_cast<int32_t>(d.num_gpu_batches)) {}
    Point next(Point p) const {
        if (++p.k == batches) p.k = 0, ++p.j;
        if (p.j == layers) p.j = 0, ++p.i;
        return p;
    }
    Point next_layer(Point p) const {
        if (++p.j == layers) p.j = 0, ++p.i;
        return p;
    }
    bool inside(Point p) const { return p.i >= 0 && p.i < steps && p.j >= 0 && p.j < layers && p.k >= 0 && p.k < batches; }
    // The executor keeps two buffers of each kind on the compute device, by the parity of j (weights) or of
    // j * batches + k (cache, input, output). Within a step, neighbours always differ; across the step
    // boundary (the last point, then the next step's first) they share a buffer when the layer count (or
    // layers x batches) is odd - a prefetch into it must wait until the current point has computed.
    bool same_weight_buffer(Point a, Point b) const { return a.j % 2 == b.j % 2; }
    bool same_batch_buffer(Point a, Point b) const { return (a.j * batches + a.k) % 2 == (b.j * batches + b.k) % 2; }
};

}  // namespace flexrt::schedule
